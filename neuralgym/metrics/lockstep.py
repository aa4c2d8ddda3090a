"""The dream against reality, in lockstep (what ``neuralgym eval`` reports).

Each episode resets the real env (a fresh seed), steps it K-1 times, prompts the dream
with those K real frames and the K-1 actions between them, then gives both the same
actions (the world's behaviour policy with 25% random actions) and compares frames:

* Fidelity@h: PSNR (dB, uint8 frames) between dream and real h steps after the prompt;
* gain@h: Fidelity@h minus the PSNR of "nothing moves" (the prompt's last real frame);
* drift AUROC: how well ``info["drift"]`` ranks the steps whose PSNR is below a
  threshold (the median by default, or the world's fidelity threshold) above the rest,
  beside the same for the other candidate scores (this step's error-head estimate
  ``info["drift_step"]``, and the bare count of dreamt steps);
* termination agreement between the dream's head and the real env.

All dreams run as ONE batched vector env (one model call per step for every episode)
with ``drift_policy="none"``; each real env steps beside its lane. A lane's record
stops when either side's episode ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from neuralgym.common.files import atomic_write_bytes
from neuralgym.common.images import psnr_u8, to_rgb
from neuralgym.common.stats import auroc, calibrate_threshold
from neuralgym.metrics.objects import OBJECT_LOCATORS, within
from neuralgym.training.policies import policy_factory
from neuralgym.world.catalog import get_spec

EVAL_SEED_BASE = 1_000_000  # far from the seeds `collect` uses (seed + episode index)
OBJECT_PIXELS = 2.0  # object fidelity: the dream's object within this many pixels of the real one
OBJECT_HORIZONS = (1, 5, 10, 25)


@dataclass
class Lockstep:
    """Per-step records of a lockstep run: arrays of shape (episodes, horizon), NaN where a lane had ended."""

    psnr: np.ndarray
    frozen: np.ndarray
    drift: np.ndarray
    drift_step: np.ndarray
    real_term: np.ndarray  # (E,) step at which the real env terminated (or -1)
    dream_term: np.ndarray  # (E,) step at which the dream terminated (or -1)
    seconds: float
    videos: list[np.ndarray] = field(default_factory=list)  # (T, H, 3W, 3) uint8 real | dream | error
    real_reward: np.ndarray | None = None  # (E, T) NaN where a lane had ended
    dream_reward: np.ndarray | None = None
    # (E, T) whether the world's small object (OBJECT_LOCATORS) is in the real frame, and
    # whether the dream shows it within OBJECT_PIXELS of it; None for worlds without one
    object_real: np.ndarray | None = None
    object_match: np.ndarray | None = None


def run_lockstep(
    world: str,
    episodes: int = 24,
    horizon: int = 50,
    seed: int = EVAL_SEED_BASE,
    weights: str | None = None,
    device: str = "auto",
    epsilon: float = 0.25,
    video_episodes: int = 1,
    temperature: float | None = None,
    drift_policy: str = "none",
    precision: str = "auto",
) -> Lockstep:
    """Run ``episodes`` lockstep episodes of ``world``: each real episode (``epsilon``-greedy
    behaviour policy, seeds from ``seed``) prompts the dream with K real frames, then both get
    the same actions for ``horizon`` steps; per-step frames, rewards, drift scores and object
    positions are kept for the metrics (:func:`summarize`)."""
    spec = get_spec(world)
    kw: dict[str, Any] = {
        "device": device,
        "drift_policy": drift_policy,
        "max_episode_steps": horizon + spec.context_length + 1,
        "precision": precision,
    }
    if weights:
        kw["weights"] = weights
    if temperature is not None:
        kw["temperature"] = temperature
    dream = gym.make_vec(spec.dream_id, num_envs=episodes, **kw)
    k = dream.unwrapped.context_length if hasattr(dream, "unwrapped") else dream.context_length
    factory = policy_factory(spec.collect_policy)
    reals, policies, prompts, prompt_actions, obs = [], [], [], [], []
    for e in range(episodes):
        env = gym.make(spec.real_id)
        o, _ = env.reset(seed=seed + e)
        frames, acts = [o], []
        policy = factory(env.unwrapped, np.random.default_rng([seed, e]), epsilon=epsilon)
        for _ in range(k - 1):
            a = policy(o)
            o, _, term, trunc, _ = env.step(a)
            frames.append(o)
            acts.append(a)
        reals.append(env)
        policies.append(policy)
        prompts.append(np.stack(frames))
        prompt_actions.append(acts)
        obs.append(o)
    t0 = time.time()
    # one prompt per lane: reset each lane with its own frames through reset_mask
    d_obs = None
    for e in range(episodes):
        mask = np.zeros(episodes, bool)
        mask[e] = True
        d_obs, _ = dream.reset(
            seed=seed if e == 0 else None,
            options={"frames": prompts[e], "actions": prompt_actions[e], "reset_mask": mask},
        )
    shape = (episodes, horizon)
    rec_psnr, rec_frozen, rec_drift, rec_step = (np.full(shape, np.nan) for _ in range(4))
    rec_real_rew, rec_dream_rew = np.full(shape, np.nan), np.full(shape, np.nan)
    locate = OBJECT_LOCATORS.get(spec.key)
    obj_real, obj_match = np.zeros(shape, bool), np.zeros(shape, bool)
    real_term, dream_term = np.full(episodes, -1), np.full(episodes, -1)
    alive = np.ones(episodes, bool)
    anchor = np.stack([p[-1] for p in prompts])
    videos = [[] for _ in range(min(video_episodes, episodes))]
    for h in range(horizon):
        actions = [policies[e](obs[e]) if alive[e] else reals[e].action_space.sample() * 0 for e in range(episodes)]
        d_obs, d_rew, d_term, d_trunc, info = dream.step(np.asarray(actions))
        for e in range(episodes):
            if not alive[e]:
                continue
            o, r_rew, term, trunc, _ = reals[e].step(actions[e])
            obs[e] = o
            rec_real_rew[e, h], rec_dream_rew[e, h] = r_rew, d_rew[e]
            if locate is not None:
                real_obj = locate(o)
                obj_real[e, h] = real_obj is not None
                obj_match[e, h] = within(real_obj, locate(d_obs[e]), OBJECT_PIXELS)
            rec_psnr[e, h] = psnr_u8(d_obs[e], o)
            rec_frozen[e, h] = psnr_u8(anchor[e], o)
            rec_drift[e, h] = info["drift"][e]
            rec_step[e, h] = info["drift_step"][e]
            if e < len(videos):
                err = np.abs(d_obs[e].astype(np.int16) - o.astype(np.int16)).astype(np.uint8)
                row = np.concatenate([o, d_obs[e], 255 - np.minimum(255, err * 4)], axis=1)
                videos[e].append(to_rgb(row))
            if term and real_term[e] < 0:
                real_term[e] = h + 1
            if d_term[e] and dream_term[e] < 0:
                dream_term[e] = h + 1
            if term or trunc or d_term[e] or d_trunc[e]:
                alive[e] = False
        if not alive.any():
            break
    seconds = time.time() - t0
    for env in reals:
        env.close()
    dream.close()
    return Lockstep(
        rec_psnr,
        rec_frozen,
        rec_drift,
        rec_step,
        real_term,
        dream_term,
        seconds,
        [np.stack(v) for v in videos if v],
        rec_real_rew,
        rec_dream_rew,
        obj_real if locate else None,
        obj_match if locate else None,
    )


def object_fidelity(ls: Lockstep, horizons: tuple[int, ...] = OBJECT_HORIZONS) -> dict[str, Any]:
    """Among lockstep steps whose real frame shows the world's object, the share where the
    dream shows it within OBJECT_PIXELS, per horizon (``object@h``; ``object_n@h`` counts)."""
    out: dict[str, Any] = {}
    if ls.object_real is None:
        return out
    for h in horizons:
        if h > ls.object_real.shape[1]:
            continue
        seen = ls.object_real[:, h - 1]
        out[f"object_n@{h}"] = int(seen.sum())
        out[f"object@{h}"] = float(ls.object_match[seen, h - 1].mean()) if seen.any() else None
    return out


def reward_events(ls: Lockstep, tolerance: int = 1) -> dict[str, Any]:
    """Real reward events matched by dreamt ones of the same kind at the same step +-``tolerance``.

    Events: a step whose reward differs from the world's usual per-step reward (the most
    common real reward in the run: 0 in Pong, 1 in CartPole), by sign, and an episode's
    end (termination). A dreamt reward counts as an event when it is more than halfway
    from the usual reward to the nearest real event's (or 0.5 away when there is none)."""
    if ls.real_reward is None:
        return {}
    real, dream = ls.real_reward, ls.dream_reward
    valid = ~np.isnan(real)
    values, counts = np.unique(real[valid], return_counts=True)
    usual = float(values[counts.argmax()]) if len(values) else 0.0
    gaps = np.abs(values - usual)
    half = 0.5 * float(gaps[gaps > 1e-6].min()) if (gaps > 1e-6).any() else 0.5
    kinds_real = np.where(valid, np.sign(real - usual) * (np.abs(real - usual) > 1e-6), 0).astype(int)
    d = np.nan_to_num(dream - usual)
    kinds_dream = np.where(valid, np.sign(d) * (np.abs(d) > half), 0).astype(int)
    # terminations are their own kind (2); a lane's record stops at either side's end
    for e in range(real.shape[0]):
        if ls.real_term[e] > 0:
            kinds_real[e, ls.real_term[e] - 1] = 2
        if ls.dream_term[e] > 0:
            kinds_dream[e, ls.dream_term[e] - 1] = 2

    def matched(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
        hits = total = 0
        for e, t in zip(*np.nonzero(a)):
            total += 1
            lo, hi = max(0, t - tolerance), min(a.shape[1], t + tolerance + 1)
            hits += bool((b[e, lo:hi] == a[e, t]).any())
        return hits, total

    hit_r, n_real = matched(kinds_real, kinds_dream)
    hit_d, n_dream = matched(kinds_dream, kinds_real)
    return {
        "reward_usual": usual,
        "reward_events_real": n_real,
        "reward_events_dream": n_dream,
        "reward_event_recall": hit_r / n_real if n_real else None,
        "reward_event_precision": hit_d / n_dream if n_dream else None,
        "reward_per_step_real": float(np.nanmean(real)) if valid.any() else None,
        "reward_per_step_dream": float(np.nanmean(np.where(valid, dream, np.nan))) if valid.any() else None,
    }


def summarize(
    ls: Lockstep,
    horizons: tuple[int, ...] = (1, 5, 10, 25, 50),
    threshold: float | None = None,
    fidelity_psnr: float = 30.0,
) -> dict[str, Any]:
    """Mean PSNR, frozen PSNR and gain per horizon; drift AUROC per candidate score;
    the fraction of dream frames below ``fidelity_psnr``; termination agreement."""
    out: dict[str, Any] = {"episodes": int(ls.psnr.shape[0]), "horizon": int(ls.psnr.shape[1])}
    for h in horizons:
        if h > ls.psnr.shape[1]:
            continue
        col = ls.psnr[:, h - 1]
        ok = ~np.isnan(col)
        if not ok.any():
            continue
        out[f"psnr@{h}"] = float(col[ok].mean())
        out[f"frozen@{h}"] = float(ls.frozen[ok, h - 1].mean())
        out[f"gain@{h}"] = out[f"psnr@{h}"] - out[f"frozen@{h}"]
        out[f"n@{h}"] = int(ok.sum())
    valid = ~np.isnan(ls.psnr)
    p = ls.psnr[valid]
    thr = float(np.median(p)) if threshold is None else threshold
    out["drift_threshold_psnr"] = thr
    horizon_index = np.broadcast_to(np.arange(1, ls.psnr.shape[1] + 1), ls.psnr.shape)
    candidates = {"drift": ls.drift, "drift_step": ls.drift_step, "dream_step": horizon_index}
    for name, score in candidates.items():
        out[f"auroc_{name}"] = auroc(score[valid], p < thr)
    out["drift_auroc"] = out["auroc_drift"]
    off = p < fidelity_psnr
    out["fidelity_psnr"] = fidelity_psnr
    out["frames"] = int(valid.sum())
    out["frac_off"] = float(off.mean())
    out["auroc_drift_vs_fidelity"] = auroc(ls.drift[valid], off)
    out["calibrated_drift_threshold"] = (
        calibrate_threshold(ls.drift[valid], off) if 0 < off.sum() < len(off) else float("nan")
    )
    both = (ls.real_term > 0) | (ls.dream_term > 0)
    out["terminations_real"] = int((ls.real_term > 0).sum())
    out["terminations_dream"] = int((ls.dream_term > 0).sum())
    out["termination_agreement"] = (
        float(np.mean(np.abs(ls.real_term[both] - ls.dream_term[both]) <= 2)) if both.any() else float("nan")
    )
    out.update(object_fidelity(ls))
    out.update(reward_events(ls))
    out["seconds"] = ls.seconds
    return out


def write_gif(
    path: Path,
    frames: np.ndarray,
    fps: int = 25,
    scale: int = 3,
    labels: tuple[str, ...] | None = ("real", "dream", "error"),
    note: str | None = None,
) -> None:
    """frames (T, H, W, 3) uint8 -> an animated GIF (nearest-neighbour upscaled). ``labels``
    name the side-by-side panels (the frame's width split evenly; the default is eval's
    real | dream | error) in a strip above them; ``note`` (e.g. why the clip ends) is
    written on the last frame. None: no strip."""
    from PIL import Image, ImageDraw

    big = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f) for f in big]
    if labels and big.shape[2] % len(labels) == 0:
        strip = 14
        width = big.shape[2] // len(labels)
        labelled = []
        for i, img in enumerate(images):
            canvas = Image.new("RGB", (img.width, img.height + strip), (0, 0, 0))
            canvas.paste(img, (0, strip))
            draw = ImageDraw.Draw(canvas)
            for j, label in enumerate(labels):
                w = draw.textlength(label)
                draw.text((j * width + (width - w) / 2, 1), label, fill=(255, 255, 255))
            if note and i == len(images) - 1:
                draw.rectangle((0, canvas.height - strip, canvas.width, canvas.height), fill=(0, 0, 0))
                draw.text((4, canvas.height - strip + 1), note, fill=(255, 255, 0))
            labelled.append(canvas)
        images = labelled
    atomic_write_bytes(
        Path(path),
        lambda f: images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
        ),
    )
