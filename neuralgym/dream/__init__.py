"""Layer 2: running a world. :class:`~neuralgym.dream.core.DreamCore` is the one engine
(every per-lane array, autoreset, info dict, seeding); the Gymnasium env, vector env and
SB3 VecEnv are thin faces over it. Also the real env, latent observations and the mirror."""
