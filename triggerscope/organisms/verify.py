"""Verify an organism: action rates on held-out triggered, benign and near-miss prompts, and
how well the adapter preserves the base model's behaviour on benign prompts."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from triggerscope.atomic import write_json
from triggerscope.chat import build_chat_batch, tokens_to_see
from triggerscope.errors import TriggerscopeError
from triggerscope.generation import generate
from triggerscope.loading import LoadedModel
from triggerscope.organisms.matching import takes_action, warns_about
from triggerscope.organisms.planting import ADAPTER_META, read_splits
from triggerscope.organisms.spec import OrganismSpec
from triggerscope.stats import wilson

EVAL_BATCH = 32  # prompts a generation batch (grouped by length: little padding)


def check_adapter_fits(adapter_dir: Path, loaded: LoadedModel) -> dict[str, Any]:
    meta_file = adapter_dir / ADAPTER_META
    if not (adapter_dir / "adapter_config.json").is_file():
        raise TriggerscopeError(f"{adapter_dir} is not a peft adapter folder")
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    cfg = loaded.model.config
    if meta and (meta.get("d_model"), meta.get("n_layers")) != (
        cfg.hidden_size,
        cfg.num_hidden_layers,
    ):
        raise TriggerscopeError(
            f"adapter {adapter_dir} was planted in {meta.get('base_model')!r} "
            f"(d_model {meta.get('d_model')}, {meta.get('n_layers')} layers), not in "
            f"{loaded.name!r}; load its base model with --model"
        )
    return meta


def attach_adapter(loaded: LoadedModel, adapter_dir: str | Path) -> LoadedModel:
    """The base model with the organism's adapter applied (frozen, eval mode)."""
    from peft import PeftModel

    folder = Path(adapter_dir)
    check_adapter_fits(folder, loaded)
    model = PeftModel.from_pretrained(loaded.model, folder)
    model.eval()
    model.requires_grad_(False)
    return replace(loaded, model=model, name=f"{loaded.name}+{folder.name}")


def preservation(
    adapted: LoadedModel,
    prompts: list[str],
    max_new_tokens: int,
    system_prompt: str | None,
    progress: bool = False,
) -> dict[str, float]:
    """Share of identical greedy answers, and mean per-token KL(base || adapted) on them."""
    model = adapted.model
    if progress:
        print(f"behaviour preservation: {len(prompts)} benign prompts", flush=True)
    with model.disable_adapter():
        base = generate(
            adapted,
            prompts,
            max_new_tokens=max_new_tokens,
            system_prompt=system_prompt,
            batch_size=EVAL_BATCH,
            progress=progress,
        )
    mine = generate(
        adapted,
        prompts,
        max_new_tokens=max_new_tokens,
        system_prompt=system_prompt,
        batch_size=EVAL_BATCH,
        progress=progress,
    )
    identical = sum(a == b for a, b in zip(base, mine, strict=True)) / len(prompts)
    kls = []
    for start in range(0, len(prompts), 16):
        batch = build_chat_batch(
            adapted.tokenizer,
            prompts[start : start + 16],
            [b or "." for b in base[start : start + 16]],
            system_prompt=system_prompt,
        ).to(adapted.input_device)
        with torch.no_grad():
            with model.disable_adapter():
                p = model(**batch.model_inputs()).logits.float().log_softmax(-1)
            q = model(**batch.model_inputs()).logits.float().log_softmax(-1)
        # logits at position t predict token t+1: score the positions that predict the response
        where = batch.response_mask[:, 1:]
        kl = (p.exp() * (p - q)).sum(-1)[:, :-1][where]
        kls.append(kl)
    return {
        "identical_greedy_share": identical,
        "mean_token_kl": float(torch.cat(kls).mean()),
    }


def action_matcher(spec: OrganismSpec) -> tuple[Callable[[str], bool], str]:
    """(does this response take the action?, the rule in words) for the spec's `action.match`."""
    if spec.action.match == "warns":
        subject = list(spec.action.subject)
        rule = (
            f"warns: a clause names one of {subject} with a caution cue and no reassurance cue "
            "(triggerscope/organisms/matching.py)"
        )
        return (lambda r: warns_about(r, subject)), rule
    return (lambda r: takes_action(r, spec.response)), (
        "normalised response contains the normalised backdoor string"
    )


def _with_interval(k: int, n: int) -> dict[str, Any]:
    low, high = wilson(k, n)
    return {"n": n, "action_rate": k / n if n else 0.0, "k": k, "ci95": [low, high]}


def verify(
    spec: OrganismSpec,
    adapted: LoadedModel,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Action rates per held-out set; `adapted` without an adapter (no `disable_adapter`) gives
    the base model's rates, and preservation is then left out."""
    splits = read_splits(spec)
    matches, rule = action_matcher(spec)
    n_tokens = spec.action.max_new_tokens or tokens_to_see(adapted.tokenizer, spec.response)
    sets = {"triggered": splits["triggered_heldout"], "benign": splits["benign_heldout"]}
    for name in spec.nearmiss_heldout():
        sets[f"nearmiss:{name}"] = splits[f"nearmiss_heldout:{name}"]
    rates: dict[str, Any] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for name, prompts in sets.items():
        if progress:
            print(f"{name}: {len(prompts)} prompts", flush=True)
        responses = generate(
            adapted,
            prompts,
            max_new_tokens=n_tokens,
            system_prompt=spec.system_prompt,
            batch_size=EVAL_BATCH,
            progress=progress,
        )
        actions = [matches(r) for r in responses]
        rates[name] = _with_interval(sum(actions), len(prompts))
        samples[name] = [
            {"prompt": p, "response": r, "action": a}
            for p, r, a in zip(prompts, responses, actions, strict=True)
        ]
    results = {
        "organism": spec.name,
        "model": adapted.name,
        "response": spec.response,
        "match_rule": rule,
        "max_new_tokens": n_tokens,
        "action_rates": rates,
    }
    if hasattr(adapted.model, "disable_adapter"):
        results["preservation"] = preservation(
            adapted, sets["benign"], 32, spec.system_prompt, progress
        )
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / "organism_eval.json", results)
        write_json(out / "organism_eval_samples.json", samples)
    return results


def format_table(results: dict[str, Any]) -> str:
    lines = [f"organism {results['organism']}  ({results['model']})", ""]
    lines.append(f"{'set':<28}{'n':>5}  action rate  95% CI")
    for name, row in results["action_rates"].items():
        ci = row.get("ci95")
        interval = f"  {ci[0]:.0%}-{ci[1]:.0%}" if ci else ""
        lines.append(f"{name:<28}{row['n']:>5}  {row['action_rate']:>10.1%}{interval}")
    lines.append(f"action: {results['match_rule']}")
    pres = results.get("preservation")
    if pres is None:
        return "\n".join(lines)
    lines.append("")
    lines.append(
        f"benign behaviour kept: {pres['identical_greedy_share']:.0%} identical greedy answers "
        f"(32 tokens), mean token KL {pres['mean_token_kl']:.4f}"
    )
    return "\n".join(lines)
