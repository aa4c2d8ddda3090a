"""Layer 5: the faces people use: the ``neuralgym`` command, play, bench and ``new``."""
