"""AUROC of many scores at once (one column per latent), ties counted as half."""

from __future__ import annotations

import torch

from triggerscope.errors import TriggerscopeError


@torch.no_grad()
def auroc(pos: torch.Tensor, neg: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """P(score of a positive > score of a negative) + P(tie) / 2, for every column.

    `pos` [n_pos, m], `neg` [n_neg, m] -> [m]. The pairwise form (Mann-Whitney U) is exact with
    ties, which matter here: a latent that never fires scores 0 everywhere and gets 0.5.
    """
    if pos.dim() != 2 or neg.dim() != 2 or pos.shape[1] != neg.shape[1]:
        raise TriggerscopeError(
            f"auroc needs [n_pos, m] and [n_neg, m] scores, got {tuple(pos.shape)} and "
            f"{tuple(neg.shape)}"
        )
    if pos.shape[0] == 0 or neg.shape[0] == 0:
        raise TriggerscopeError("auroc needs at least one positive and one negative example")
    pos, neg = pos.double(), neg.double()
    out = torch.empty(pos.shape[1], dtype=torch.float64)
    pairs = pos.shape[0] * neg.shape[0]
    for start in range(0, pos.shape[1], chunk):
        p = pos[:, None, start : start + chunk]
        n = neg[None, :, start : start + chunk]
        wins = (p > n).sum((0, 1)).double() + 0.5 * (p == n).sum((0, 1)).double()
        out[start : start + chunk] = wins / pairs
    return out.float()
