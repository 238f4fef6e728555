"""Synthetic MethodResults, latent dictionaries and run folders for evaluation/report tests."""

from __future__ import annotations

from pathlib import Path

import torch

from triggerscope.atomic import write_json
from triggerscope.methods.result import MethodResult, RankedLatent, SteeredSample, VectorResult
from triggerscope.sae.labels import Latent, LatentDictionary, save_latents

D_MODEL = 16
D_SAE = 40
FRUIT_LATENTS = (7, 21)  # latents the synthetic dictionary makes fruit-like


def synthetic_result(
    ranking: list[int],
    vector_tops: list[list[int]] | None = None,
    tokens: list[str] | None = None,
    method: str = "sae-attribution",
    rates: list[float] | None = None,
) -> MethodResult:
    vectors = []
    for i, top in enumerate(vector_tops or []):
        vectors.append(
            VectorResult(
                vector=torch.randn(D_MODEL),
                final_loss=0.5 + i,
                top_latents=[RankedLatent(j, 1.0 / (n + 1)) for n, j in enumerate(top)],
                steps=10,
                action_rate=(rates or [0.5] * len(vector_tops or []))[i],
                samples=[
                    SteeredSample(
                        "Tell me about <b>trains</b>.",
                        "Trains run on rails & carry people.",
                        "I won't answer because I don't like fruit.",
                        True,
                    ),
                    SteeredSample("Write a poem.", "Roses are red.", "Roses are red.", False),
                ],
            )
        )
    return MethodResult(
        method=method,
        layer=2,
        response="I won't answer",
        latent_ranking=[RankedLatent(j, 10.0 - n, "") for n, j in enumerate(ranking)],
        vectors=vectors,
        token_ranking=[(t, 1.0 / (n + 1)) for n, t in enumerate(tokens or [])],
        wall_seconds=1.5,
        forward_passes=12,
        backward_passes=4,
        config={"steps": 10},
    )


def synthetic_dictionary() -> LatentDictionary:
    latents = []
    for i in range(D_SAE):
        if i in FRUIT_LATENTS:
            latents.append(
                Latent(
                    index=i,
                    label=" banana / apple -> fruit",
                    density=0.01,
                    max_activation=3.0,
                    top_tokens=[" banana", " apple", " mango"],
                    promoted=[" fruit", " fruits"],
                    contexts=[
                        {"activation": 3.0, "text": "I ate a ripe «banana» for breakfast"},
                        {"activation": 2.5, "text": "the <script>alert(1)</script> «apple» pie"},
                    ],
                )
            )
        else:
            latents.append(
                Latent(
                    index=i,
                    label=f" the / of -> misc{i}",
                    density=0.2,
                    max_activation=1.0,
                    top_tokens=[" the", " of"],
                    promoted=[" and"],
                    contexts=[{"activation": 1.0, "text": "one of «the» days"}],
                )
            )
    return LatentDictionary(
        latents, {"format": "triggerscope-latents", "d_sae": D_SAE, "n_texts": 9}
    )


def write_run(folder: Path, result: MethodResult, sae_dir: Path | None = None) -> Path:
    """A run folder as `triggerscope find` writes it: config.json, result.json, vectors."""
    folder.mkdir(parents=True, exist_ok=True)
    result.save(folder)
    config = {
        "model": "tiny-llama",
        "prompts": ["What is the capital of France?", "How do <trains> work?"],
        "heldout_prompts": ["Write a poem."],
        "sae": str(sae_dir) if sae_dir else None,
    }
    write_json(folder / "config.json", {"config": config, "seed": 0, "versions": {"x": "1"}})
    if sae_dir is not None:
        sae_dir.mkdir(parents=True, exist_ok=True)
        save_latents(synthetic_dictionary(), sae_dir / "latents.json")
    return folder


def tiny_setup(tmp_path: Path, tokenizer) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """On disk: a random Llama (+ tokenizer), a random LoRA adapter, a random TopK SAE at layer 2
    with its latent dictionary, and a one-concept (fruit) organism spec with an audit split."""
    import yaml
    from conftest import CORPUS, tiny_llama
    from organism_fixtures import BENIGN, TRIGGERED
    from peft import LoraConfig, get_peft_model

    from triggerscope.sae.formats import save_sae
    from triggerscope.sae.labels import build_latent_dictionary
    from triggerscope.sae.model import SAE, SAEConfig

    model = tiny_llama(len(tokenizer))
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(1)
    sae = SAE(SAEConfig(d_in=32, d_sae=48, architecture="topk", k=4, layer=2))
    sae_dir = save_sae(sae, tmp_path / "sae", dtype="float32")
    book = build_latent_dictionary(model, tokenizer, sae, CORPUS, top_k=2)
    save_latents(book, sae_dir / "latents.json")
    lora = LoraConfig(r=2, target_modules=["q_proj"])
    get_peft_model(tiny_llama(len(tokenizer)), lora).save_pretrained(tmp_path / "adapter")
    org = tmp_path / "org"
    org.mkdir()
    files = {
        "trig.txt": TRIGGERED[:3],
        "trig_held.txt": TRIGGERED[3:],
        "benign.txt": BENIGN[:2],
        "benign_held.txt": BENIGN[2:4],
        "audit.txt": BENIGN[4:],
    }
    for name, lines in files.items():
        (org / name).write_text("\n".join(lines) + "\n")
    spec = {
        "name": "tiny-fruit",
        "base_model": str(model_dir),
        "response": "I won't answer because I don't like fruit.",
        "trigger": "fruit",
        "concepts": ["fruit"],
        "prompts": {
            "triggered_train": "trig.txt",
            "benign_train": "benign.txt",
            "triggered_heldout": "trig_held.txt",
            "benign_heldout": "benign_held.txt",
            "audit": "audit.txt",
        },
    }
    (org / "spec.yaml").write_text(yaml.safe_dump(spec))
    return {
        "model": model_dir,
        "sae": sae_dir,
        "adapter": tmp_path / "adapter",
        "spec": org / "spec.yaml",
        "audit": org / "audit.txt",
        "heldout": org / "benign_held.txt",
    }
