"""The bottleneck decoder's autoencoder pretraining: it learns to draw the frames it is shown."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralgym.training.decoder_pretrain import FrameEncoder, pretrain_decoder
from neuralgym.world.model import WorldModel, WorldModelConfig

CONFIG = WorldModelConfig(height=16, width=16, context=2, patch=2, bottleneck=4, decoder_width=8)


def squares(n: int, seed: int = 0) -> np.ndarray:
    """(n, 16, 16, 1) uint8 frames: a bright 4x4 square at a random place on black."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, 16, 16, 1), np.uint8)
    for f, (y, x) in zip(frames, rng.integers(0, 12, size=(n, 2))):
        f[y : y + 4, x : x + 4] = 255
    return frames


def test_pretraining_teaches_the_decoder_to_draw_the_frames() -> None:
    torch.manual_seed(0)
    model = WorldModel(CONFIG)
    frames = squares(1024)
    untrained = pretrain_decoder(WorldModel(CONFIG), frames, steps=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = pretrain_decoder(model, frames, steps=300, lr=3e-3)
    assert trained > untrained + 5.0, (untrained, trained)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)  # only the decoder moves


def test_encoder_codes_are_normalised_like_the_worlds() -> None:
    enc = FrameEncoder(code=4, width=8, channels=1, height=16, frame_width=16, patch=2)
    z = enc(torch.rand(3, 1, 16, 16))
    assert z.shape == (3, 4)
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(3), atol=1e-5, rtol=0)


def test_pretraining_needs_a_bottleneck_world_and_enough_frames() -> None:
    with pytest.raises(ValueError, match="bottleneck"):
        pretrain_decoder(WorldModel(WorldModelConfig()), squares(600), steps=1)
    with pytest.raises(ValueError, match="at least 8 frames"):
        pretrain_decoder(WorldModel(CONFIG), squares(7), steps=1)
