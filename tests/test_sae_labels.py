"""The latent dictionary: top contexts, density and logit lens against hand computations."""

import json

import pytest
import torch
from conftest import CORPUS

from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import record
from triggerscope.sae.labels import (
    MARK,
    auto_label,
    build_latent_dictionary,
    describe,
    import_neuronpedia,
    load_latents,
    logit_lens,
    save_latents,
)
from triggerscope.sae.metrics import text_batches
from triggerscope.sae.model import SAE, SAEConfig

LAYER, D_SAE = 2, 24
TEXTS = [*CORPUS, "Apples and pears are fruit.", "Skiing in the snow is fun."]


@pytest.fixture
def sae(tiny):
    """Random ReLU latents that fire on roughly a fifth of the tokens; latent 0 never fires."""
    batch = next(text_batches(tiny.tokenizer, TEXTS))
    with record(tiny.model, [LAYER]) as acts, torch.no_grad():
        tiny.model(**batch.model_inputs())
    scale = float(acts[LAYER][batch.positions].std())
    torch.manual_seed(3)
    s = SAE(SAEConfig(d_in=32, d_sae=D_SAE, architecture="standard", layer=LAYER))
    s.requires_grad_(False)
    s.W_enc.copy_(torch.randn(32, D_SAE) / scale)
    s.b_enc.copy_(-5.0 + torch.randn(D_SAE))
    s.b_enc[0] = -1e4
    return s


def hand_activations(tiny, sae, batch_size):
    """Per text: (activations [seq, d_sae] at evaluated positions, token ids there)."""
    out = []
    for batch in text_batches(tiny.tokenizer, TEXTS, batch_size=batch_size):
        with record(tiny.model, [LAYER]) as acts, torch.no_grad():
            tiny.model(**batch.model_inputs())
        for row in range(len(batch.input_ids)):
            keep = batch.positions[row]
            out.append((sae.encode(acts[LAYER][row][keep]), batch.input_ids[row][keep]))
    return out


def test_top_contexts_and_density_match_hand_computation(tiny, sae):
    book = build_latent_dictionary(tiny.model, tiny.tokenizer, sae, TEXTS, top_k=3, batch_size=2)
    per_text = hand_activations(tiny, sae, batch_size=2)
    total = sum(a.shape[0] for a, _ in per_text)
    assert book.meta["n_tokens"] == total and book.meta["n_texts"] == len(TEXTS)
    checked = 0
    for i in range(1, D_SAE):
        maxima = sorted(
            ((float(a[:, i].max()), t) for t, (a, _) in enumerate(per_text)), reverse=True
        )
        expected = [v for v, _ in maxima[:3] if v > 0]
        got = [c["activation"] for c in book[i].contexts]
        assert got == pytest.approx(expected, abs=1e-3)
        fired = sum(int((a[:, i] > 0).sum()) for a, _ in per_text)
        assert book[i].density == pytest.approx(fired / total, rel=1e-5)
        if expected:
            t = maxima[0][1]
            acts, ids = per_text[t]
            token = tiny.tokenizer.decode(ids[int(acts[:, i].argmax())].tolist())
            assert f"{MARK[0]}{token}{MARK[1]}" in book[i].contexts[0]["text"]
            assert book[i].top_tokens[0] in [c for c in book[i].top_tokens]
            checked += 1
    assert checked > 5
    assert book[0].contexts == [] and book[0].density == 0.0
    assert book[0].label.startswith("(never active on")


def test_logit_lens_uses_final_norm_and_unembedding(tiny, sae):
    norm = tiny.model.model.norm
    with torch.no_grad():
        norm.weight.copy_(torch.rand(32) * 2)
    book = build_latent_dictionary(tiny.model, tiny.tokenizer, sae, [], n_promoted=5)
    unembed = tiny.model.get_output_embeddings().weight
    for i in (1, 7, 20):
        logits = (sae.W_dec[i] * norm.weight) @ unembed.T
        top = [tiny.tokenizer.decode([t]) for t in logits.topk(5).indices.tolist()]
        bottom = [tiny.tokenizer.decode([t]) for t in (-logits).topk(5).indices.tolist()]
        assert book[i].promoted == top and book[i].suppressed == bottom
    assert torch.allclose(
        logit_lens(tiny.model, sae.W_dec[:2]), (sae.W_dec[:2] * norm.weight) @ unembed.T
    )
    assert book[3].density is None and book.meta["n_tokens"] == 0


def test_auto_label_and_find():
    label = auto_label(
        [" apple", " Apple", " pear", "."], [" fruit", "ing", " juice", "!!", " Fruit"]
    )
    assert label == "apple / pear -> fruit, juice"
    assert auto_label([], []) == "(no clear pattern)"


def test_save_load_round_trip_and_show(tiny, sae, tmp_path):
    book = build_latent_dictionary(tiny.model, tiny.tokenizer, sae, TEXTS, top_k=2)
    path = save_latents(book, tmp_path / "latents.json")
    again = load_latents(path)
    assert again.latents == book.latents and again.meta == book.meta
    lines = path.read_text().splitlines()
    assert len(lines) == D_SAE + 3  # meta, "latents": [, one line per latent, ]
    text = describe(again[5], again.meta)
    assert text.startswith(f"latent 5 of {D_SAE}: ") and "promotes:" in text
    some = next(lat for lat in again.latents if lat.top_tokens)
    assert some in again.find(some.top_tokens[0].strip())
    with pytest.raises(TriggerscopeError, match="latent 99 does not exist"):
        again[99]
    with pytest.raises(TriggerscopeError, match="no latent dictionary at"):
        load_latents(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"meta": {"format": "other"}, "latents": []}')
    with pytest.raises(TriggerscopeError, match="not a triggerscope latent dictionary"):
        load_latents(tmp_path / "bad.json")


def test_neuronpedia_import(tiny, sae, tmp_path):
    book = build_latent_dictionary(tiny.model, tiny.tokenizer, sae, [], n_promoted=0)
    rows = [
        {"modelId": "m", "layer": "2-res", "index": "4", "description": "fruit names"},
        {"index": 4, "description": "a second explanation, ignored"},
        {"index": 7, "description": " winter sports "},
        {"index": "999", "description": "outside this SAE"},
    ]
    export = tmp_path / "np.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert import_neuronpedia(book, export) == 2
    assert book[4].label == "fruit names" and book[4].label_source == "neuronpedia"
    assert book[7].description == "winter sports"
    assert book.meta["neuronpedia"] == {"file": "np.jsonl", "labelled": 2, "outside": 1}
    assert book[5].label_source == "auto"
    export.write_text('{"index": 1, "description": "ok"}\nnot json\n')
    with pytest.raises(TriggerscopeError, match=r"np.jsonl:2 is not valid JSON"):
        import_neuronpedia(book, export)
    export.write_text('{"index": 5000, "description": "far"}\n')
    with pytest.raises(TriggerscopeError, match=r"no row of .* names a latent of this SAE"):
        import_neuronpedia(book, export)
    export.write_text('{"idx": 1}\n')
    with pytest.raises(TriggerscopeError, match='needs an integer "index"'):
        import_neuronpedia(book, export)
