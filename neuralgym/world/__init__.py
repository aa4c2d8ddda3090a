"""Layer 1: what a world is: its spec (``envs/<world>.toml``), spaces, keymap, drift
policy, the world model and its weights file, and the Gymnasium registration of its ids."""
