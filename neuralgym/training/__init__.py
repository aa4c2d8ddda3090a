"""Layer 3: making a world: episode files and collection, behaviour policies, training
windows, and the trainer (config, losses, calibration, loop)."""
