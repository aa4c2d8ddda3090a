"""Pong's paddle returns, teacher-forced (neuralgym.metrics.returns): found in real games,
and counted right for worlds that do and do not draw them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralgym.dream.real import RealWorldEnv
from neuralgym.metrics.objects import PONG_PLAYER_COLUMNS, pong_ball
from neuralgym.metrics.returns import paddle_arrivals, paddle_returns
from neuralgym.training.collect import run_episode
from neuralgym.training.data import Episode
from neuralgym.training.policies import policy_factory
from neuralgym.world.catalog import get_spec


@pytest.fixture(scope="module")
def pong_game() -> Episode:
    """700 real steps of the tracker with 25% random actions: it returns most balls and misses some."""
    spec = get_spec("pong")
    env = RealWorldEnv(spec)
    try:
        policy = policy_factory("pong-tracker")(env, np.random.default_rng(3), epsilon=0.25)
        return run_episode(env, policy, seed=3, max_steps=700)
    finally:
        env.close()


class StandIn(torch.nn.Module):
    """A world with two futures: ``draw(context, target)`` gives the first; the second is the
    newest context frame; its head prefers the first with probability sigmoid(2)."""

    def __init__(self, draw):
        super().__init__()
        self.draw, self.unused = draw, torch.nn.Parameter(torch.zeros(1))

    def forward(self, frames, actions, target=None):
        futures = torch.stack([self.draw(frames, target), frames[:, -1]], dim=1)
        return {"futures": futures, "frame": futures[:, 0], "future_logits": torch.tensor([[2.0, 0.0]])}


def test_returns_and_misses_are_found_where_the_ball_shows_again(pong_game: Episode) -> None:
    arrivals = paddle_arrivals(pong_game.frames)
    returned = [t for t, r in arrivals if r]
    missed = [t for t, r in arrivals if not r]
    assert len(returned) >= 3 and len(missed) >= 1, arrivals
    for t, r in arrivals:
        ball = pong_ball(pong_game.frames[t])
        assert ball is not None and (ball[1] < PONG_PLAYER_COLUMNS[0]) == r
        assert pong_ball(pong_game.frames[t - 1]) is None  # hidden in the paddle the step before


def test_a_world_that_draws_reality_is_right_and_one_that_freezes_is_not(pong_game: Episode) -> None:
    spec = get_spec("pong")
    drawn = torch.sigmoid(torch.tensor(2.0)).item()
    oracle = paddle_returns(StandIn(lambda frames, target: target), spec, [pong_game])
    assert oracle["returns"] >= 3 and oracle["misses"] >= 1
    assert oracle["returns_any"] == oracle["misses_any"] == 1.0
    assert oracle["returns_drawn"] == pytest.approx(drawn) and oracle["misses_drawn"] == pytest.approx(drawn)
    # a world that keeps the ball hidden (both futures the newest frame) never draws it
    frozen = paddle_returns(StandIn(lambda frames, target: frames[:, -1]), spec, [pong_game])
    assert frozen["returns_any"] == frozen["misses_any"] == frozen["returns_drawn"] == 0.0


def test_a_world_with_object_cells_reports_where_its_head_places_the_ball(pong_game: Episode) -> None:
    from types import SimpleNamespace

    from neuralgym.world.object_cells import pong_ball_cells

    class WithCells(StandIn):
        """The oracle above, whose object head is sure of the cell where the ball shows (``right``)
        or of the cell diagonally across the field."""

        config = SimpleNamespace(object_cells=1, height=64, width=64, patch=4)

        def __init__(self, right: bool):
            super().__init__(lambda frames, target: target)
            self.right = right

        def forward(self, frames, actions, target=None):
            out = super().forward(frames, actions, target)
            cell = pong_ball_cells(target, 4)
            cell = cell if self.right else torch.where(cell < 256, 255 - cell, cell)
            out["object_logits"] = torch.nn.functional.one_hot(cell, 257).float() * 50.0
            return out

    spec = get_spec("pong")
    right = paddle_returns(WithCells(True), spec, [pong_game])
    assert right["returns_cell"] == pytest.approx(1.0) and right["misses_cell"] == pytest.approx(1.0)
    wrong = paddle_returns(WithCells(False), spec, [pong_game])
    assert wrong["returns_cell"] < 1e-6 and wrong["misses_cell"] < 1e-6
    assert "returns_cell" not in paddle_returns(StandIn(lambda frames, target: target), spec, [pong_game])
