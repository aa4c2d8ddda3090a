"""Frames the real env can show: the real-frame indexes plausibility is measured against.

A dreamt frame is *plausible* when some real frame looks like it: its plausibility is the
PSNR (dB, uint8) to the nearest frame of a
:class:`~neuralgym.world.frameindex.RealFrameIndex`.

* CartPole's frame is a function of two numbers, the cart position and the pole angle, so
  its index is exact: the real renderer and the world's preprocessing over a grid one
  render pixel (0.008 m) and 0.004 rad apart (:func:`cartpole_grid`). Each entry carries
  its (x, theta) label, which is how a frame-reading controller reads a dreamt frame.
* Any other world gets a proxy: a bank of real frames from held-out episodes of the
  world's behaviour policy (:func:`real_frame_bank`). A perfect dream still scores below
  100 dB against a finite bank; the same bank's score on fresh real frames is the yardstick.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from neuralgym.common.files import atomic_write_bytes, cache_dir
from neuralgym.dream.real import RealWorldEnv
from neuralgym.training.policies import policy_factory
from neuralgym.world.frameindex import RealFrameIndex
from neuralgym.world.preprocess import preprocess_frame
from neuralgym.world.spec import WorldSpec

#: one render pixel of CartPole's 600-pixel-wide canvas (world width 4.8 m)
CARTPOLE_X_STEP = 4.8 / 600
CARTPOLE_THETA_STEP = 0.004
CARTPOLE_X_RANGE = 2.6  # the episode ends past 2.4: its last frame may lie a little beyond
CARTPOLE_THETA_RANGE = 0.3  # ... and past 0.2095 rad


def _cached(name: str, key: dict, build) -> dict[str, np.ndarray]:
    """Arrays from the cache file for ``key``, or built by ``build()`` and cached (atomically)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    return arrays


def cartpole_grid(
    spec: WorldSpec, x_step: float = CARTPOLE_X_STEP, theta_step: float = CARTPOLE_THETA_STEP
) -> RealFrameIndex:
    """Every CartPole frame on a grid of cart positions and pole angles, rendered by the real
    renderer and preprocessed as the world does; labels (x, theta). Cached on disk
    (``NEURALGYM_CACHE``, default ``~/.cache/neuralgym``)."""
    import gymnasium as gym

    xs = np.arange(-CARTPOLE_X_RANGE, CARTPOLE_X_RANGE + 1e-9, x_step)
    thetas = np.arange(-CARTPOLE_THETA_RANGE, CARTPOLE_THETA_RANGE + 1e-9, theta_step)
    key = {"pp": repr(spec.preprocess), "xs": [len(xs), x_step], "thetas": [len(thetas), theta_step], "v": 1}

    def build() -> dict[str, np.ndarray]:
        env = gym.make("CartPole-v1", render_mode="rgb_array")
        env.reset(seed=0)
        frames = np.empty((len(xs) * len(thetas), *spec.obs_shape), np.uint8)
        labels = np.empty((len(frames), 2), np.float32)
        i = 0
        for x in xs:
            for theta in thetas:
                env.unwrapped.state = np.array([x, 0.0, theta, 0.0])
                frames[i] = preprocess_frame(env.render(), spec.preprocess)
                labels[i] = (x, theta)
                i += 1
        env.close()
        return {"frames": frames, "labels": labels}

    arrays = _cached("cartpole-grid", key, build)
    return RealFrameIndex(
        arrays["frames"],
        arrays["labels"],
        exact=True,
        description=f"exact: {len(arrays['frames'])} real renders, {x_step:.3f} m x {theta_step} rad apart",
    )


def real_frame_bank(
    spec: WorldSpec, frames: int = 20_000, seed: int = 5_000_000, epsilon: float = 0.25
) -> RealFrameIndex:
    """A proxy index: ``frames`` real frames from episodes of the world's behaviour policy
    (``epsilon`` random actions) on seeds far from training's. Cached on disk."""
    key = {
        "world": spec.key,
        "source": [spec.source_id, repr(spec.source_kwargs)],
        "pp": repr(spec.preprocess),
        "frames": frames,
        "seed": seed,
        "eps": epsilon,
        "v": 1,
    }

    def build() -> dict[str, np.ndarray]:
        env = RealWorldEnv(spec)
        factory = policy_factory(spec.collect_policy)
        out: list[np.ndarray] = []
        e = 0
        while len(out) < frames:
            obs, _ = env.reset(seed=seed + e)
            policy = factory(env, np.random.default_rng([seed, e]), epsilon=epsilon)
            out.append(obs)
            for _ in range(spec.max_episode_steps):
                obs, _, term, trunc, _ = env.step(policy(obs))
                out.append(obs)
                if term or trunc or len(out) >= frames:
                    break
            e += 1
        env.close()
        return {"frames": np.stack(out[:frames])}

    arrays = _cached(f"{spec.key}-bank", key, build)
    return RealFrameIndex(
        arrays["frames"],
        None,
        exact=False,
        description=f"proxy: nearest of {len(arrays['frames'])} real frames (behaviour policy, {epsilon:.0%} random)",
    )


def index_for(spec: WorldSpec, bank_frames: int = 20_000) -> RealFrameIndex:
    """The exact index where the world's frame is a known function of its state (CartPole),
    else a bank of real frames."""
    if spec.source_id == "CartPole-v1" and spec.preprocess.frame_source == "render":
        return cartpole_grid(spec)
    return real_frame_bank(spec, bank_frames)
