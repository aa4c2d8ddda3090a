"""The one vec-env pipeline an agent sees, in training and in evaluation, dream or real."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecMonitor

#: pixel agents see this many stacked frames
FRAME_STACK = 4


def make_agent_env(
    env_id: str,
    *,
    obs: str,
    n_envs: int,
    seed: int,
    weights: str | None = None,
    device: str = "cpu",
    drift_policy: str | None = None,
    temperature: float | None = None,
    uncertainty_penalty: float = 0.0,
    compile: bool = False,
    mirror: bool = False,
    sticky: float = 0.0,
) -> VecEnv:
    """``n_envs`` lanes of ``env_id`` as an SB3 VecEnv with episode statistics; pixels are
    stacked :data:`FRAME_STACK` deep, latents come from ``weights``' encoder (the world's own).
    Dream-only settings (``drift_policy``, ``temperature``, ``compile``...) are ignored by a real id.
    ``sticky`` > 0 (training only): each lane repeats its last action with that probability."""
    from neuralgym.dream.sb3 import is_dream_id, make_sb3_vec_env

    kwargs: dict[str, Any] = {"device": device}
    if weights:
        kwargs["weights"] = weights
    if is_dream_id(env_id):
        if compile:
            kwargs["compile"] = True
        if drift_policy:
            kwargs["drift_policy"] = drift_policy
        if temperature is not None:
            kwargs["temperature"] = temperature
        if uncertainty_penalty:
            kwargs["uncertainty_penalty"] = uncertainty_penalty
    if mirror:  # the latent of the mirrored history beside the history's (MirrorSymmetricPolicy)
        kwargs["latent_mirror"] = True
    env = VecMonitor(make_sb3_vec_env(env_id, n_envs, seed=seed, obs=obs, **kwargs))
    if obs == "pixels":
        env = VecFrameStack(env, n_stack=FRAME_STACK)
    if sticky:  # outermost: the latent history and the dream see the actions actually taken
        from neuralgym.agents.sticky import VecStickyActions

        env = VecStickyActions(env, sticky, seed=seed)
    return env
