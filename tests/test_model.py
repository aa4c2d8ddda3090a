"""The world model: shapes and ranges, its compute budget, the 8-bit quantizer."""

from __future__ import annotations

import pytest
import torch

from neuralgym.world.model import WorldModel, WorldModelConfig, count_flops, quantize

GRAY_K4 = WorldModelConfig()  # 64x64x1, K=4, two discrete actions: CartPole's shape
RGB = WorldModelConfig(height=48, width=80, channels=3, context=3, action_dim=5)
BOTTLENECK = WorldModelConfig(context=4, background=1, bottleneck=8, decoder_width=8)


def inputs(c: WorldModelConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, c.context, c.channels, c.height, c.width, generator=g)
    actions = torch.rand(batch, c.context, c.action_dim, generator=g)
    return frames, actions


def perturbed(c: WorldModelConfig, seed: int = 0) -> WorldModel:
    """A model with every weight random (the zero-initialised output layers would
    otherwise hide shape and range bugs behind an exact copy of the last frame)."""
    torch.manual_seed(seed)
    model = WorldModel(c)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("config", [GRAY_K4, RGB, BOTTLENECK], ids=["gray-k4", "rgb-k3", "bottleneck"])
def test_forward_shapes_and_range(config: WorldModelConfig) -> None:
    model = perturbed(config)
    frames, actions = inputs(config, batch=3)
    with torch.no_grad():
        out = model(frames, actions)
    assert out["frame"].shape == (3, config.channels, config.height, config.width)
    for key in ("reward", "term_logit", "log_err"):
        assert out[key].shape == (3,), key
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["frame"].min() >= 0.0 and out["frame"].max() <= 1.0
    assert not torch.equal(out["frame"], frames[:, -1])  # it predicts, not just copies


def test_fresh_model_copies_the_last_frame() -> None:
    """At initialisation the predicted change is zero: static pixels come out unchanged."""
    torch.manual_seed(0)
    model = WorldModel(GRAY_K4).eval()
    frames, actions = inputs(GRAY_K4, batch=2)
    with torch.no_grad():
        assert torch.equal(model(frames, actions)["frame"], frames[:, -1])


def test_actions_condition_the_prediction() -> None:
    model = perturbed(GRAY_K4)
    frames, _ = inputs(GRAY_K4, batch=1)
    left = torch.tensor([[[1.0, 0.0]] * GRAY_K4.context])
    right = torch.tensor([[[0.0, 1.0]] * GRAY_K4.context])
    with torch.no_grad():
        assert not torch.allclose(model(frames, left)["frame"], model(frames, right)["frame"])


def test_batch_elements_are_independent() -> None:
    model = perturbed(GRAY_K4)
    frames, actions = inputs(GRAY_K4, batch=4)
    with torch.no_grad():
        full = model(frames, actions)["frame"]
        one = model(frames[2:3], actions[2:3])["frame"]
    torch.testing.assert_close(full[2:3], one, atol=1e-5, rtol=1e-5)


def test_default_config_fits_the_compute_budget() -> None:
    flops = count_flops(WorldModel(WorldModelConfig()))
    assert 1e6 < flops < 30e6, flops


@pytest.mark.parametrize("config", [GRAY_K4, RGB], ids=["gray-k4", "rgb-k3"])
def test_encode_shape(config: WorldModelConfig) -> None:
    model = perturbed(config)
    frames, actions = inputs(config, batch=2)
    with torch.no_grad():
        z = model.encode(frames, actions)
    assert z.shape == (2, config.coarse_width * 18) and torch.isfinite(z).all()  # 4x4 grid + mean + max


def test_quantize_rounds_to_8_bits_and_passes_gradients() -> None:
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    q = quantize(x)
    levels = q.detach() * 255.0
    torch.testing.assert_close(levels, torch.round(levels), atol=1e-4, rtol=0)
    assert (q.detach() - x.detach()).abs().max() <= 0.5 / 255.0 + 1e-6
    (q * torch.arange(64.0).reshape(1, 1, 8, 8)).sum().backward()
    torch.testing.assert_close(x.grad, torch.arange(64.0).reshape(1, 1, 8, 8).expand(2, 1, 8, 8))


@pytest.mark.parametrize("config", [GRAY_K4, BOTTLENECK], ids=["filter", "bottleneck"])
def test_gradients_reach_every_parameter(config: WorldModelConfig) -> None:
    model = perturbed(config).train()
    frames, actions = inputs(config, batch=2)
    out = model(frames, actions)
    loss = out["frame"].square().mean() + sum(out[k].square().mean() for k in ("reward", "term_logit", "log_err"))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize(
    "bad",
    [
        WorldModelConfig(height=60),
        WorldModelConfig(width=36),
        WorldModelConfig(context=1),
        WorldModelConfig(bottleneck=-1),
        WorldModelConfig(bottleneck=8, decoder_width=0),
        WorldModelConfig(futures=0),
        WorldModelConfig(bottleneck=8, futures=2),
    ],
    ids=["height", "width", "context", "bottleneck", "decoder-width", "futures", "futures-bottleneck"],
)
def test_config_validation(bad: WorldModelConfig) -> None:
    with pytest.raises(ValueError):
        WorldModel(bad)


def test_config_roundtrips_through_a_dict() -> None:
    assert WorldModelConfig(**RGB.to_dict()) == RGB


def test_bottleneck_frame_is_drawn_from_the_code_alone() -> None:
    """A bottleneck world's frame is its decoder's drawing of the code: a fresh one draws the
    base image whatever the history shows (no debris copied from the last frame), and once
    trained the code is all that reaches the frame."""
    torch.manual_seed(0)
    model = WorldModel(BOTTLENECK).eval()
    frames, actions = inputs(BOTTLENECK, batch=2)
    with torch.no_grad():
        out = model(frames, actions)["frame"]
    torch.testing.assert_close(out, model.decoder.base.expand(2, -1, -1, -1).clamp(0, 1))
    model = perturbed(BOTTLENECK)
    with torch.no_grad():
        code = model.to_code(torch.randn(1, model.to_code[0].in_features))
        a = model.decoder(code)
        model.decoder.base.add_(0.1)
        torch.testing.assert_close(model.decoder(code), a + 0.1)


def test_bottleneck_ring_buffer_matches_ordered_history() -> None:
    model = perturbed(BOTTLENECK)
    frames, actions = inputs(BOTTLENECK, batch=2)
    k, start = BOTTLENECK.context, 3
    ring = frames.roll(start, dims=1).flatten(1, 2)  # time step t in slot (start + t) % K
    with torch.no_grad():
        torch.testing.assert_close(model(ring, actions, start)["frame"], model(frames, actions)["frame"])
    assert k == 4


FUTURES = WorldModelConfig(context=4, background=1, futures=3)


def test_with_the_next_frame_every_future_is_drawn_and_the_closest_is_the_frame() -> None:
    model = perturbed(FUTURES)
    frames, actions = inputs(FUTURES, batch=4)
    with torch.no_grad():
        every = model(frames, actions, target=frames[:, -1])
        assert every["futures"].shape == (4, 3, 1, 64, 64) and every["future_logits"].shape == (4, 3)
        err = (every["futures"] - frames[:, -1:]).pow(2).flatten(2).mean(dim=2)  # (B, M)
        assert torch.equal(every["future"], err.argmin(dim=1))
        assert torch.equal(every["frame"], every["futures"][torch.arange(4), every["future"]])
        assert (every["futures"][:, 0] - every["futures"][:, 1]).abs().max() > 1e-3  # the futures differ
        # without a target, the drawn future alone: the most likely one, or argmax(logits + noise)
        likely = model(frames, actions)
        assert torch.allclose(
            likely["frame"], every["futures"][torch.arange(4), likely["future_logits"].argmax(dim=1)], atol=1e-6
        )
        noise = torch.tensor([[0.0, 0.0, 1e6]]).repeat(4, 1)  # future 2 for everyone
        assert torch.allclose(model(frames, actions, noise=noise)["frame"], every["futures"][:, 2], atol=1e-6)


def test_gated_futures_depart_from_future_0_only_where_their_gates_open() -> None:
    config = WorldModelConfig(context=4, background=1, futures=3, gated_futures=1)
    model = perturbed(config)
    frames, actions = inputs(config, batch=4)
    with torch.no_grad():
        model.future_gate.bias.fill_(-40.0)  # shut everywhere: every future is future 0
        shut = model(frames, actions, target=frames[:, -1])["futures"]
        assert torch.equal(shut[:, 1], shut[:, 0]) and torch.equal(shut[:, 2], shut[:, 0])
        model.future_gate.bias.fill_(40.0)  # open everywhere: the futures of the same taps without gates
        opened = model(frames, actions, target=frames[:, -1])["futures"]
        ungated = WorldModel(WorldModelConfig(context=4, background=1, futures=3))
        ungated.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("future_gate")})
        torch.testing.assert_close(ungated(frames, actions, target=frames[:, -1])["futures"], opened)
        assert (opened[:, 1] - opened[:, 0]).abs().max() > 1e-3
        # half open, per cell: a dream's drawn future is the same frame as in the list of every future
        model.future_gate.weight.normal_(std=0.5)
        model.future_gate.bias.zero_()
        every = model(frames, actions, target=frames[:, -1])["futures"]
        for m in range(3):
            noise = torch.full((4, 3), -1e6)
            noise[:, m] = 0.0
            torch.testing.assert_close(model(frames, actions, noise=noise)["frame"], every[:, m].clamp(0, 1))
        picks = torch.tensor([0, 2, 1, 2])  # lanes that draw different futures in one batch
        noise = torch.full((4, 3), -1e6).scatter(1, picks[:, None], 0.0)
        torch.testing.assert_close(
            model(frames, actions, noise=noise)["frame"], every[torch.arange(4), picks].clamp(0, 1)
        )


def test_a_large_batch_in_cpu_blocks_keeps_each_samples_draw() -> None:
    model = perturbed(FUTURES)
    frames, actions = inputs(FUTURES, batch=5)
    noise = torch.randn(5, 3) * 10
    with torch.no_grad():
        whole = model(frames, actions, noise=noise)["frame"]
        model.cpu_block = 2
        blocks = model(frames, actions, noise=noise)["frame"]
    assert torch.allclose(whole, blocks, atol=1e-5)  # float rounding of other batch shapes
