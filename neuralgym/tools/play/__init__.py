"""``neuralgym play``: see :mod:`neuralgym.tools.play.app`."""

from neuralgym.tools.play.app import add_arguments, main

__all__ = ["add_arguments", "main"]
