import pytest
import torch

from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.auroc import auroc


def brute(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_matches_pairwise_definition_with_ties() -> None:
    pos = torch.randint(0, 4, (9, 50)).float()  # few values: many ties
    neg = torch.randint(0, 4, (7, 50)).float()
    got = auroc(pos, neg, chunk=16)  # several chunks
    want = [brute(pos[:, j].tolist(), neg[:, j].tolist()) for j in range(50)]
    assert torch.allclose(got, torch.tensor(want), atol=1e-6)


def test_known_values() -> None:
    pos = torch.tensor([[2.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    neg = torch.tensor([[0.0, 5.0, 0.0], [1.0, 4.0, 0.0]])
    assert auroc(pos, neg).tolist() == [1.0, 0.0, 0.5]  # perfect, reversed, never fires


def test_bad_shapes_raise() -> None:
    with pytest.raises(TriggerscopeError, match="auroc needs"):
        auroc(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(TriggerscopeError, match="at least one"):
        auroc(torch.zeros(0, 4), torch.zeros(3, 4))
