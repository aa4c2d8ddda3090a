"""The dream's frame history: a ring buffer the model reads in place, exactly as the frames in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralgym.dream.core import DreamCore
from neuralgym.dream.history import FrameRing
from neuralgym.world.spec import WorldSpec
from tests.worlds import WORLDS


def test_the_ring_keeps_the_last_k_frames_in_order() -> None:
    ring = FrameRing(num_envs=2, k=4, channels=1, height=8, width=8, device=torch.device("cpu"))
    frames = [torch.full((2, 1, 8, 8), float(t)) for t in range(7)]
    ring.write(torch.tensor([0, 1]), torch.stack(frames[:4], dim=1))
    for t in range(4, 7):
        ring.push(frames[t])
        expected = torch.stack(frames[t - 3 : t + 1], dim=1)
        assert torch.equal(ring.ordered(), expected) and torch.equal(ring.newest(), frames[t])
    assert ring.start == 3 and ring.buf.is_contiguous(memory_format=torch.channels_last)
    ring.write(torch.tensor([1]), torch.stack(frames[:4], dim=1)[:1])  # one lane restarts mid-rotation
    assert torch.equal(ring.ordered(torch.tensor([1])), torch.stack(frames[:4], dim=1)[:1])
    assert torch.equal(ring.ordered(torch.tensor([0])), torch.stack(frames[3:7], dim=1)[:1])


@pytest.mark.parametrize("spec", WORLDS)
def test_the_model_reads_the_ring_as_it_reads_the_ordered_frames(spec: WorldSpec) -> None:
    core = DreamCore(spec, num_envs=4, device="cpu")
    core.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(spec.context_length + 3):  # the ring rotates past its start
        core.step(
            np.stack([core.action_space.sample() for _ in range(4)])
            if spec.actions.kind == "box"
            else rng.integers(0, core.action_space.n, 4)
        )
        core.reset_lanes(core.needs_reset.copy())  # lanes that ended restart: their histories are rewritten in the ring
    assert core.history.start != 0
    acts = torch.zeros(4, core.k, core.action_dim)
    with torch.no_grad():
        ring = core.model(core.history.buf, acts, start=core.history.start)
        plain = core.model(core.frames, acts)
    for key in ("frame", "term_logit", "log_err"):
        torch.testing.assert_close(ring[key], plain[key], atol=1e-4, rtol=1e-4)
