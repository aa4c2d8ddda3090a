"""The model call of a dream: the world model, optionally ``torch.compile``'d.

torch.compile fuses the elementwise work around the convolutions (on CUDA also CUDA
graphs, ``"reduce-overhead"``); it costs tens of seconds per batch size at first, and it
builds the model at its first call. Where it cannot be built here (no C++ compiler, an
unsupported backend) the dream warns and runs eagerly. Only that first call is guarded:
a later error is a real one and propagates.
"""

from __future__ import annotations

import warnings

import torch

from neuralgym.world.model import WorldModel


class Predictor:
    """``predictor(frames, actions)``: the outputs of ``model`` (compiled with ``compile``)."""

    def __init__(self, model: WorldModel, device: torch.device, compile: bool = False):
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}")
        self.model = model
        mode = "reduce-overhead" if device.type == "cuda" else "default"
        self._call = torch.compile(model, dynamic=False, mode=mode) if compile else model
        self._pending = compile  # the first call of a compiled model builds it

    @property
    def compiled(self) -> bool:
        return self._call is not self.model

    def __call__(
        self,
        frames: torch.Tensor,
        actions: torch.Tensor,
        start: int | None = None,
        noise: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``frames``, ``start`` and ``noise`` as :meth:`WorldModel.forward` takes them (a
        compiled model: frames in time order, ``start`` None)."""
        args = (frames, actions, start, noise)
        if not self._pending:
            return self._call(*args)
        try:
            out = self._call(*args)
        except Exception as err:
            first_line = str(err).splitlines()[0] if str(err) else ""
            warnings.warn(
                f"torch.compile failed ({type(err).__name__}: {first_line}); the dream runs the model in eager mode",
                RuntimeWarning,
                stacklevel=4,
            )
            self._call = self.model
            out = self.model(*args)
        self._pending = False
        return out
