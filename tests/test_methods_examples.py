"""Reading vectors through top-activating held-out texts: scores, marks, cache, saving, CLI."""

import json

import pytest
import torch
from conftest import tiny_llama
from methods_data import HELDOUT, PROMPTS, make_task

from triggerscope.chat import build_chat_batch
from triggerscope.cli import run_cli
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import record
from triggerscope.methods import examples
from triggerscope.methods.examples import TextActivations, rank_examples, text_activations
from triggerscope.methods.registry import run_method
from triggerscope.reports.run_folder import load_run

pytest_plugins = ("methods_fixtures",)
TEXTS = [
    "Bananas and apples are fruit.",
    "The stars at night over the lazy dog.",
    "Skiing in the snow, then what?",
    "Paris is the capital of France.",
    "I like oil and water.",
]


@pytest.fixture
def texts_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return str(path)


def test_texts_rank_by_their_strongest_token_and_the_marks_follow_it(llama3_tokenizer):
    tok = llama3_tokenizer
    ids = [
        tok("the quick fox", add_special_tokens=False)["input_ids"],
        tok("hi", add_special_tokens=False)["input_ids"],
    ]
    n0, n1 = len(ids[0]), len(ids[1])
    acts = torch.zeros(n0 + n1, 2)
    acts[:n0, 0] = torch.arange(n0, dtype=torch.float)  # text 0 peaks at its last token
    acts[n0:, 0] = 0.5
    acts[n0 + n1 - 1, 0] = n0 + 5.0  # text 1 peaks higher, at its last token
    acts[:, 1] = 100.0  # a direction the vector does not have
    owner = torch.tensor([0] * n0 + [1] * n1)
    found = TextActivations(acts, owner, ids, 1)
    ranked = rank_examples(found, tok, torch.tensor([3.0, 0.0]), 5)
    assert [r.index for r in ranked] == [1, 0]
    assert ranked[0].score == pytest.approx(n0 + 5.0) and ranked[1].score == pytest.approx(n0 - 1)
    assert ranked[1].token == tok.decode(ids[0][-1:])
    assert f"«{ranked[1].token}»" in ranked[1].text
    assert ranked[1].text.count("«") == min(examples.MARKED_TOKENS, n0)
    # the opposite direction ranks the other way round
    assert [r.index for r in rank_examples(found, tok, torch.tensor([-1.0, 0.0]), 5)] == [0, 1]


def test_cosine_scoring_is_blind_to_a_tokens_size():
    # text 0: a huge token slightly along v; text 1: a small token exactly along v (mean 0)
    acts = torch.tensor(
        [[10.0, 400.0], [0.0, -400.0], [0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [-13.0, 0.0]]
    )
    found = TextActivations(acts, torch.tensor([0, 0, 0, 1, 1, 1]), [[5, 6, 7], [7, 8, 9]], 1)
    v = torch.tensor([1.0, 0.0])
    assert torch.allclose(examples.token_scores(found, v, "projection"), acts[:, 0])
    cosine = examples.token_scores(found, v, "cosine")
    assert cosine[3] == pytest.approx(1.0) and cosine[0] == pytest.approx(10 / 400.125, rel=1e-3)
    tok = type("Tok", (), {"decode": staticmethod(lambda ids: "".join(f"t{i}" for i in ids))})
    assert [r.index for r in rank_examples(found, tok, v, 2)] == [0, 1]
    assert [r.index for r in rank_examples(found, tok, v, 2, "cosine")] == [1, 0]


def test_activations_are_the_layer_output_at_user_tokens_and_are_cached(toy, monkeypatch):
    calls = []
    real = examples.run_to_layer
    monkeypatch.setattr(examples, "run_to_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    found = text_activations(toy, TEXTS, 1, max_tokens=32, batch_size=2)
    assert len(calls) == found.n_batches == 3
    batch = build_chat_batch(toy.tokenizer, TEXTS[2:3])
    with torch.no_grad(), record(toy.model, [1]) as store:
        toy.model(**batch.model_inputs())
    expected = store[1][0][batch.user_mask[0]]
    assert torch.allclose(found.acts[found.owner == 2], expected, atol=1e-5)
    assert found.ids[2] == batch.input_ids[0][batch.user_mask[0]].tolist()
    again = text_activations(toy, TEXTS, 1, max_tokens=32, batch_size=2)
    assert again.n_batches == 0 and len(calls) == 3 and torch.equal(again.acts, found.acts)
    text_activations(toy, TEXTS, 2, max_tokens=32)  # another layer is another pass
    assert len(calls) == 4


def test_every_vector_of_a_run_is_read_from_one_pass(toy, texts_file, monkeypatch):
    calls = []
    real = examples.run_to_layer
    monkeypatch.setattr(examples, "run_to_layer", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(examples, "_CACHE", type(examples._CACHE)())
    kw = {"k": 3, "norm": 2.0, "heldout_samples": 0, "example_texts": texts_file}
    result = run_method("random", toy, make_task(), example_readout=2, **kw)
    assert len(calls) == 1  # 5 texts, one batch, three vectors
    found = text_activations(toy, TEXTS, 1, max_tokens=64)
    for v in result.vectors:
        assert len(v.top_examples) == 2
        proj = found.acts @ (v.vector / v.vector.norm())
        best = max(float(proj[found.owner == t].max()) for t in range(len(TEXTS)))
        assert v.top_examples[0].score == pytest.approx(best, rel=1e-5)
        assert v.top_examples[0].score >= v.top_examples[1].score
    assert result.extras["examples"]["n_texts"] == len(TEXTS)
    assert result.extras["examples"]["source"] == texts_file
    plain = run_method("random", toy, make_task(), **kw)
    assert all(not v.top_examples for v in plain.vectors) and "examples" not in plain.extras


def test_examples_survive_saving_and_old_run_folders_still_load(toy, texts_file, tmp_path):
    result = run_method(
        "random",
        toy,
        make_task(),
        k=1,
        norm=1.0,
        heldout_samples=0,
        example_readout=3,
        example_texts=texts_file,
    )
    result.save(tmp_path / "new")
    back = load_run(tmp_path / "new").result
    assert back.vectors[0].top_examples == result.vectors[0].top_examples
    summary = json.loads((tmp_path / "new" / "result.json").read_text())
    for row in summary["vectors"]:  # as written before top_examples existed
        del row["top_examples"]
    old = tmp_path / "old"
    old.mkdir()
    (old / "result.json").write_text(json.dumps(summary))
    (old / "vectors.safetensors").write_bytes(
        (tmp_path / "new" / "vectors.safetensors").read_bytes()
    )
    assert load_run(old).result.vectors[0].top_examples == []


def test_bad_text_sources_are_refused_before_any_compute(toy, tmp_path, monkeypatch):
    with pytest.raises(TriggerscopeError, match=r"example_texts file .* does not exist"):
        run_method("random", toy, make_task(), example_readout=2, example_texts="/no/such.txt")
    monkeypatch.setattr(examples, "_default_corpus", lambda: tmp_path / "heldout.jsonl")
    with pytest.raises(TriggerscopeError, match="the SAE corpus is not built"):
        run_method("supervised-melbo", toy, make_task(), example_readout=2)
    with pytest.raises(TriggerscopeError, match="example_score must be 'projection' or 'cosine'"):
        run_method("random", toy, make_task(), example_score="dot")
    with pytest.raises(TriggerscopeError, match="example_max_tokens must be an integer >= 2"):
        run_method("random", toy, make_task(), example_max_tokens=1)
    with pytest.raises(TriggerscopeError, match="unknown setting 'example_readout'"):
        run_method("token", toy, make_task(), example_readout=2)


def test_find_prints_each_vectors_examples(tmp_path, llama3_tokenizer, texts_file, capsys):
    model_dir = tmp_path / "model"
    tiny_llama(len(llama3_tokenizer), init=0.2).save_pretrained(model_dir)
    llama3_tokenizer.save_pretrained(model_dir)
    prompts, heldout = tmp_path / "p.txt", tmp_path / "h.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    heldout.write_text("\n".join(HELDOUT) + "\n")
    args = ["find", "--method", "random", "--model", str(model_dir), "--response", "I won't."]
    args += ["--prompts", str(prompts), "--heldout", str(heldout), "--layer", "1"]
    args += ["--out", str(tmp_path / "runs"), "--no-progress", "--set", "max_new_tokens=2"]
    args += ["--set", "k=1", "--examples", "2", "--texts", texts_file]
    assert run_cli(args) == 0
    out = capsys.readouterr().out
    assert out.count("  example ") == 2 and "«" in out
    (run,) = (tmp_path / "runs").iterdir()
    saved = json.loads((run / "result.json").read_text())
    assert len(saved["vectors"][0]["top_examples"]) == 2
    assert run_cli([*args[:-2], "--texts", str(tmp_path / "missing.txt")]) == 2
