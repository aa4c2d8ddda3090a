"""How a dream draws one step: which future (a world with several), termination and reward.

At ``temperature`` > 0 all are drawn: the future from the future head's probabilities at
that temperature (Gumbel noise scaled by it), termination with probability
sigmoid(logit / temperature), a reward classifier's value from its calibrated class
probabilities (the training weights removed), so rare events happen at their rate and over
an episode the dream pays what the model expects. At 0 each is the most likely outcome.
"""

from __future__ import annotations

import torch

from neuralgym.world.model import WorldModel


def sample_termination(logit: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Bool (N,) from termination logits (N,) already free of training's offsets."""
    if temperature <= 0:
        return logit > 0
    p = torch.sigmoid(logit / temperature)
    return torch.rand(p.shape, generator=generator, device=p.device) < p


def sample_reward(
    out: dict[str, torch.Tensor], model: WorldModel, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    """Float (N,): a reward classifier's drawn value, or the regressed (most likely) reward."""
    if "reward_logits" not in out or temperature <= 0:
        return torch.nan_to_num(out["reward"])
    logits = torch.nan_to_num(out["reward_logits"].float() - model.reward_logit_offset) / temperature
    pick = torch.multinomial(torch.softmax(logits, dim=1), 1, generator=generator)[:, 0]
    return model.reward_values[pick]
