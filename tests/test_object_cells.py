"""Object cells: the cell locator agrees with the metrics' ball finder, and a world with object
cells draws its frame around the cell it is given (or draws one) and starts as the world it
came from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralgym.metrics.objects import pong_ball
from neuralgym.world.model import WorldModel, WorldModelConfig, draw_noise
from neuralgym.world.object_cells import object_cell_locator, pong_ball_cells

NONE = 256  # a 64x64 frame has 16 x 16 cells of 4x4 pixels; this index says "no object"


def pong_like_frames(n: int, seed: int = 0) -> np.ndarray:
    """(n, 64, 64, 1) uint8: Pong's background, both paddles somewhere, and a 2x2 ball (also
    half-bright ones, ones in a paddle's columns, and none at all)."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, 64, 64, 1), 87, np.uint8)
    for f in frames:
        for cols in ((6, 8), (56, 58)):
            top = rng.integers(0, 58)
            f[top : top + 6, cols[0] : cols[1]] = 147
        kind = rng.integers(0, 5)
        if kind == 4:
            continue  # no ball
        r, c = rng.integers(0, 63), rng.integers(0, 63)
        if kind == 3:
            c = 56  # inside the player's paddle's columns: hidden
        f[r : r + 2, c : c + 2] = 236 if kind < 2 else 115  # 115: too faint to be a ball
    return frames


def test_the_cell_locator_finds_the_ball_where_the_metrics_finder_does() -> None:
    frames = pong_like_frames(300)
    cells = pong_ball_cells(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0, 4)
    want = []
    for f in frames:
        ball = pong_ball(f)
        want.append(NONE if ball is None else (int(ball[0]) // 4) * 16 + int(ball[1]) // 4)
    assert cells.tolist() == want
    assert NONE in want and len(set(want)) > 20  # both kinds were tried


def test_a_world_without_a_locator_is_a_clear_error() -> None:
    assert object_cell_locator("pong") is pong_ball_cells
    with pytest.raises(ValueError, match="'cartpole' has none"):
        object_cell_locator("cartpole")


def _world_pair() -> tuple[WorldModel, WorldModel]:
    """A perturbed world with 3 futures and the same world given object cells."""
    torch.manual_seed(0)
    plain = WorldModel(WorldModelConfig(context=4, background=1, futures=3))
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cells = WorldModel(WorldModelConfig(context=4, background=1, futures=3, object_cells=1))
    missing, _ = cells.load_state_dict(plain.state_dict(), strict=False)
    assert all(name.startswith("object_") for name in missing)
    return plain.eval(), cells.eval()


def test_a_world_given_object_cells_starts_as_the_world_it_came_from() -> None:
    plain, cells = _world_pair()
    frames, actions = torch.rand(2, 4, 1, 64, 64), torch.rand(2, 4, 2)
    with torch.no_grad():
        a, b = plain(frames, actions), cells(frames, actions)
    assert torch.equal(a["frame"], b["frame"])
    assert torch.allclose(b["object_logits"], torch.zeros(2, NONE + 1))  # uniform over the cells and "none"


def test_the_frame_is_drawn_around_the_cell_it_is_given_or_draws() -> None:
    plain, cells = _world_pair()
    frames, actions = torch.rand(1, 4, 1, 64, 64), torch.rand(1, 4, 2)
    with torch.no_grad():
        cells.object_stamp.weight.normal_(std=0.5)
        base = plain(frames, actions)["frame"]
        assert torch.equal(cells(frames, actions, object_target=torch.tensor([NONE]))["frame"], base)
        # a cell changes the frame around it only: the stamp reaches one cell, the block after it two,
        # the filter taps one pixel
        for cell in (0, 17 * 5, 255):
            out = cells(frames, actions, object_target=torch.tensor([cell]))
            assert out["object"].tolist() == [cell]
            changed = (out["frame"] - base).abs()[0, 0] > 0
            rows, cols = torch.nonzero(changed, as_tuple=True)
            assert len(rows) > 0
            r0, c0 = divmod(cell, 16)
            assert (rows // 4 - r0).abs().max() <= 3 and (cols // 4 - c0).abs().max() <= 3
        # without a target: the most likely cell, or argmax(logits + noise) with the futures' noise first
        noise = draw_noise(cells, 1)
        assert noise.shape == (1, 3 + NONE + 1)
        assert cells(frames, actions)["object"] == cells(frames, actions)["object_logits"].argmax(dim=1)
        forced = torch.zeros(1, 3 + NONE + 1)
        forced[0, 3 + 40] = 1e6
        drawn = cells(frames, actions, noise=forced)
        assert drawn["object"].tolist() == [40]
        assert torch.equal(drawn["frame"], cells(frames, actions, object_target=torch.tensor([40]))["frame"])


def test_object_cells_are_checked() -> None:
    with pytest.raises(ValueError, match="object_cells must be 0 or 1"):
        WorldModelConfig(object_cells=2).validate()
    with pytest.raises(ValueError, match="0 in a bottleneck world"):
        WorldModelConfig(object_cells=1, bottleneck=32).validate()


def test_jittered_cells_move_to_a_neighbour_and_none_stays_none() -> None:
    from neuralgym.training.losses import jitter_cells

    config = WorldModelConfig()
    torch.manual_seed(0)
    cells = torch.tensor([17 * 5, 120, NONE, 0] * 500)
    assert torch.equal(jitter_cells(cells, config, 0.0), cells)
    moved = jitter_cells(cells, config, 1.0)
    rows, cols = moved // 16 - cells // 16, moved % 16 - cells % 16
    inner = (cells == 17 * 5) | (cells == 120)
    assert bool((rows[inner].abs() <= 1).all() and (cols[inner].abs() <= 1).all())
    assert bool(((rows[inner] != 0) | (cols[inner] != 0)).all())  # away from the grid's edge: always a neighbour
    assert len(set(moved[cells == 120].tolist())) == 8  # every neighbour drawn
    assert bool((moved[cells == NONE] == NONE).all())
    assert bool((moved[cells == 0] < 18).all())  # a corner cell stays on the grid
    some = jitter_cells(cells, config, 0.25)
    assert 0.15 < float((some != cells)[inner].float().mean()) < 0.35
