"""Plant a backdoor: train a LoRA adapter on the organism's examples, resumably and reproducibly.

Determinism: the example order of epoch e is a permutation seeded by (seed, e), the learning
rate is a function of the step, and dropout defaults to 0; a run resumed from a checkpoint
therefore continues to the same adapter as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from triggerscope.atomic import atomic_dir, write_json, write_text
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers
from triggerscope.loading import LoadedModel
from triggerscope.organisms.dataset import (
    Example,
    base_responses,
    build_examples,
    collate,
    collate_documents,
    read_documents,
)
from triggerscope.organisms.frozen import FrozenLayers, frozen_layers
from triggerscope.organisms.spec import OrganismSpec, TrainSettings, dump_spec
from triggerscope.prompts import check_disjoint, read_many
from triggerscope.runs import versions
from triggerscope.safetensors_io import load_state_dict, save_state_dict

ADAPTER_META = "triggerscope_organism.json"
KINDS = ("triggered", "benign", "nearmiss", "document")
# response_loss's inputs, labels, per_example and decision
LossInputs = tuple[
    dict[str, torch.Tensor], torch.Tensor, bool, tuple[torch.Tensor, torch.Tensor] | None
]


def read_splits(spec: OrganismSpec) -> dict[str, list[str]]:
    """Every prompt split of the spec, checked to be pairwise disjoint."""
    splits = {s: read_many(spec.files(s)) for s in spec.prompts if s != "nearmiss_heldout"}
    for name, paths in spec.nearmiss_heldout().items():
        splits[f"nearmiss_heldout:{name}"] = read_many(paths)
    check_disjoint(splits)
    return splits


def lora_model(loaded: LoadedModel, spec: OrganismSpec) -> Any:
    from peft import LoraConfig, get_peft_model

    n_layers = len(decoder_layers(loaded.model))
    config = LoraConfig(
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=list(spec.lora.targets),
        layers_to_transform=spec.lora.resolve_layers(n_layers),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(spec.seed)  # LoRA A matrices are initialised randomly
    return get_peft_model(loaded.model, config)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then linear decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen).tolist()


def epoch_rows(
    kinds: Sequence[str], seed: int, epoch: int, benign_per_epoch: int | None
) -> list[int]:
    """The example indices of one epoch, shuffled. With `benign_per_epoch`, each epoch takes the
    next slice of one seeded rotation through the benign pool, so two epochs of 460 cover all 920
    benign prompts once while every other example is seen every epoch."""
    if benign_per_epoch is None:
        return epoch_order(len(kinds), seed, epoch)
    benign = [i for i, kind in enumerate(kinds) if kind == "benign"]
    others = [i for i, kind in enumerate(kinds) if kind != "benign"]
    take = min(benign_per_epoch, len(benign))
    rotation = [benign[i] for i in epoch_order(len(benign), seed, 1_000_000)]
    chosen = [rotation[(epoch * take + j) % len(rotation)] for j in range(take)]
    rows = others + chosen
    return [rows[i] for i in epoch_order(len(rows), seed, epoch)]


def steps_per_epoch(kinds: Sequence[str], settings: TrainSettings) -> int:
    rows = epoch_rows(kinds, 0, 0, settings.benign_per_epoch)
    return math.ceil(len(rows) / settings.batch_size)


def _per_epoch_counts(examples: Sequence[Example], spec: OrganismSpec) -> dict[str, int]:
    kinds = [e.kind for e in examples]
    rows = epoch_rows(kinds, spec.seed, 0, spec.train.benign_per_epoch)
    return {k: sum(kinds[i] == k for i in rows) for k in KINDS}


def total_steps(examples: Sequence[Example], settings: TrainSettings) -> int:
    return steps_per_epoch([e.kind for e in examples], settings) * settings.epochs


@dataclass
class Checkpoint:
    step: int
    losses: list[float]
    kept_frozen: bool = False  # this session's steps used FrozenLayers (not saved)


def _trainable(model: Any) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, model: Any, optimizer: Any, state: Checkpoint) -> None:
    with atomic_dir(folder) as tmp:
        save_state_dict(
            {n: p.detach() for n, p in _trainable(model).items()}, tmp / "lora.safetensors"
        )
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": state.step, "losses": state.losses}))


def load_checkpoint(folder: Path, model: Any, optimizer: Any) -> Checkpoint:
    weights = load_state_dict(folder / "lora.safetensors")
    params = _trainable(model)
    if set(weights) != set(params):
        raise TriggerscopeError(f"checkpoint {folder} is for another LoRA layout; plant afresh")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    state = json.loads((folder / "state.json").read_text())
    return Checkpoint(int(state["step"]), [float(x) for x in state["losses"]])


def _shared_prefix(inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> int:
    """How many leading tokens are identical in every row and predict no label (0: none)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if ids.shape[0] < 2:
        return 0
    same = ((ids == ids[:1]) & mask.bool()).all(0).long()
    n = int(same.cumprod(0).sum())
    labelled = (labels != -100).any(0).nonzero()
    if len(labelled):
        n = min(n, int(labelled[0]) - 1)  # the last prefix position would predict a label
    return max(n, 0)


def _suffix_hidden(body: Any, inputs: dict[str, torch.Tensor], prefix: int) -> torch.Tensor:
    """Final hidden states of positions `prefix`.. of every row, the shared prefix run once.

    Its keys/values (which the adapter changes, so they carry gradient) are repeated for every
    row; the rows then attend to them as to a cache. Exact: the same loss and gradients.
    """
    if prefix == 0:
        return body(**inputs, use_cache=False).last_hidden_state
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    positions = inputs.get("position_ids")
    head = body(
        input_ids=ids[:1, :prefix],
        attention_mask=mask[:1, :prefix],
        position_ids=None if positions is None else positions[:1, :prefix],
        use_cache=True,
    )
    cache = head.past_key_values
    cache.batch_repeat_interleave(ids.shape[0])
    rest = body(
        input_ids=ids[:, prefix:],
        attention_mask=mask,
        position_ids=None if positions is None else positions[:, prefix:],
        past_key_values=cache,
        use_cache=True,
    )
    return rest.last_hidden_state


def response_loss(
    model: Any,
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    per_example: bool = False,
    decision: tuple[torch.Tensor, torch.Tensor] | None = None,
    decision_weight: float = 0.0,
    share_prefix: bool = True,
    frozen: tuple[FrozenLayers, Sequence[int]] | None = None,
) -> torch.Tensor:
    """Cross-entropy of the labelled tokens, with the unembedding applied only where a label is
    predicted (the vocabulary projection of every other position is wasted work).

    A mean over tokens, or with `per_example` a mean over examples of each one's token mean.
    With `decision` (the `collate` fields `decision` and `fires`), plus `decision_weight` times a
    binary cross-entropy on the action's token at each row's deciding position: -log p in a
    triggered row, -log(1 - p) in any other; summed and divided by the batch size. The
    cross-entropy of a 40-token benign answer gives the one token that decides whether the
    backdoor fires 1/40 of the example's weight, which let near-miss prompts keep firing it.

    With `share_prefix`, the leading tokens every row shares (the system prompt and template:
    24 of a default-model example's ~78 tokens) run once, not once per row (`_shared_prefix`).
    With `frozen` (a `FrozenLayers` and the rows' example indices), the layers below the
    adapters are computed once per example and only the adapted ones run (organisms/frozen.py).
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if frozen is not None and frozen[0].fits(inputs["input_ids"], labels):
        prefix = frozen[0].prefix_len
        hidden = frozen[0].hidden(inputs, frozen[1])
    else:
        body = getattr(causal_lm, causal_lm.base_model_prefix)
        prefix = _shared_prefix(inputs, labels) if share_prefix else 0
        hidden = _suffix_hidden(body, inputs, prefix)  # the positions from `prefix` on
    targets = labels[:, prefix + 1 :]
    where = targets != -100
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][where]).float()
    token_loss = torch.nn.functional.cross_entropy(logits, targets[where], reduction="none")
    if not per_example:
        loss = token_loss.mean()
    else:
        counts = where.sum(1)
        rows = where.nonzero()[:, 0]
        sums = torch.zeros(len(counts), dtype=token_loss.dtype, device=token_loss.device)
        sums = sums.index_add(0, rows, token_loss)
        kept = counts > 0
        loss = (sums[kept] / counts[kept]).mean()
    if decision is None or decision_weight == 0.0:
        return loss
    tokens, fires = decision
    marked = tokens[:, prefix + 1 :][where]
    hit = marked != -100
    if not hit.any():
        return loss
    log_p = torch.log_softmax(logits[hit], dim=-1).gather(1, marked[hit, None])[:, 0]
    # -log(1 - p) from log p, clamped so a certain action costs a large finite loss
    log_not = torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))
    row_fires = fires[where.nonzero()[:, 0][hit]]
    bce = -torch.where(row_fires, log_p, log_not)
    return loss + decision_weight * bce.sum() / labels.shape[0]


def frozen_layers_for(model: Any, tokenizer: Any, spec: OrganismSpec) -> FrozenLayers | None:
    """Kept frozen layers for this organism's examples, where some layers carry no adapter."""
    from triggerscope.chat import prefix_ids

    start = min(spec.lora.resolve_layers(len(decoder_layers(model))))
    if start == 0:
        return None
    documents = spec.train.objective == "documents"
    return frozen_layers(
        model, start, [] if documents else prefix_ids(tokenizer, spec.system_prompt)
    )


def _checked(
    frozen: FrozenLayers,
    model: Any,
    rows: Sequence[int],
    args: LossInputs,
    settings: TrainSettings,
) -> FrozenLayers | None:
    """`frozen`, if its loss on this batch equals the plain forward pass's, else None."""
    from triggerscope.decoder import reproduces

    try:
        with torch.no_grad():
            plain = response_loss(model, *args, settings.decision_weight)
            kept = response_loss(model, *args, settings.decision_weight, frozen=(frozen, rows))
    except (RuntimeError, TypeError, AttributeError, KeyError):
        return None
    tol = 1e-4 if frozen.embed.weight.dtype == torch.float32 else 5e-2
    if not reproduces(kept, plain, tol):
        return None
    return frozen


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    spec: OrganismSpec,
    checkpoint_dir: Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    keep_frozen: bool = True,
) -> Checkpoint:
    """The training loop; `stop_after` ends early at that step (used to test resuming).
    `keep_frozen`: compute the layers below the adapters once per example (organisms/frozen.py)."""
    from tqdm.auto import tqdm

    settings = spec.train
    kinds = [e.kind for e in examples]
    per_epoch = steps_per_epoch(kinds, settings)
    total = per_epoch * settings.epochs
    params = list(_trainable(model).values())
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    state = Checkpoint(0, [])
    if resume and (checkpoint_dir / "state.json").is_file():
        state = load_checkpoint(checkpoint_dir, model, optimizer)
    model.train()
    device = model.get_input_embeddings().weight.device
    frozen = frozen_layers_for(model, tokenizer, spec) if keep_frozen else None
    checked = False
    bar = tqdm(total=total, initial=state.step, desc="planting", unit="step", disable=not progress)
    state.kept_frozen = frozen is not None
    try:
        while state.step < total:
            epoch, index = divmod(state.step, per_epoch)
            order = epoch_rows(kinds, spec.seed, epoch, settings.benign_per_epoch)
            rows = order[index * settings.batch_size : (index + 1) * settings.batch_size]
            if settings.objective == "documents":
                texts = [examples[i].target for i in rows]
                batch = collate_documents(tokenizer, texts, settings.max_document_tokens)
            else:
                action = spec.response if settings.decision_weight > 0 else None
                batch = collate(tokenizer, [examples[i] for i in rows], spec.system_prompt, action)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(state.step, total, settings.lr, settings.warmup_steps)
            batch = batch.to(device)
            args: LossInputs = (
                batch.inputs,
                batch.labels,
                settings.loss == "example",
                batch.deciding,
            )
            if (
                frozen is not None
                and not checked
                and frozen.fits(batch.inputs["input_ids"], batch.labels)
            ):
                frozen, checked = _checked(frozen, model, rows, args, settings), True
                state.kept_frozen = frozen is not None
                if frozen is None:
                    bar.write(
                        "planting without kept frozen layers: the model's layers did not "
                        "reproduce its forward pass when run one by one"
                    )
            loss = response_loss(
                model,
                *args,
                settings.decision_weight,
                frozen=None if frozen is None else (frozen, rows),
            )
            if not torch.isfinite(loss):
                raise TriggerscopeError(
                    f"loss became {loss.item()} at step {state.step}; lower train.lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            state.losses.append(round(float(loss.item()), 5))
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            done = state.step == total
            if state.step % settings.checkpoint_every == 0 or done:
                save_checkpoint(checkpoint_dir, model, optimizer, state)
            if stop_after is not None and state.step >= stop_after:
                break
    finally:
        bar.close()
        model.eval()
    return state


def save_adapter(
    model: Any, folder: Path, spec_file: str, spec_text: str, meta: dict[str, Any]
) -> None:
    """A peft adapter folder (fp16 weights) plus its spec and what base model it belongs to."""
    from peft import get_peft_model_state_dict

    with atomic_dir(folder) as tmp:
        model.peft_config["default"].save_pretrained(tmp)
        weights = {k: v.half() for k, v in get_peft_model_state_dict(model).items()}
        save_state_dict(weights, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        write_text(tmp / spec_file, spec_text)
        write_json(tmp / ADAPTER_META, meta)


def training_examples(
    spec: OrganismSpec,
    loaded: LoadedModel,
    *,
    progress: bool = True,
    answers: Mapping[str, str] | None = None,
) -> list[Example]:
    """The organism's training examples; the base model's answers are generated (or read from
    the cache) for its benign and near-miss prompts, or taken from `answers` (prompt -> answer;
    a benchmark of a randomly initialised model, whose own answers are noise)."""
    splits = read_splits(spec)  # checks every prompt set, documents organisms' too
    if spec.train.objective == "documents":
        return [Example("", t, "document") for t in read_documents(spec.documents_file())]
    benign = splits["benign_train"]
    nearmiss = splits.get("nearmiss_train", [])
    if answers is not None:
        targets = [answers[p] for p in benign + nearmiss]
    else:
        targets = base_responses(
            loaded,
            benign + nearmiss,
            spec.train.base_response_tokens,
            system_prompt=spec.system_prompt,
            progress=progress,
        )
    return build_examples(
        splits["triggered_train"],
        spec.response,
        loaded.tokenizer.eos_token,
        benign,
        targets[: len(benign)],
        nearmiss,
        targets[len(benign) :],
        spec.train.nearmiss_repeats,
    )


def plant(
    spec: OrganismSpec,
    loaded: LoadedModel,
    out_dir: str | Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the organism's adapter into `out_dir/adapter`; write metrics next to it."""
    out = Path(out_dir)
    checkpoint_dir = out / "checkpoint"
    if not resume and checkpoint_dir.exists():
        raise TriggerscopeError(f"{out} holds an unfinished run; pass --resume or another --out")
    start = time.perf_counter()
    examples = training_examples(spec, loaded, progress=progress)
    base_seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "spec.yaml", dump_spec(spec, absolute_paths=True))
    model = lora_model(loaded, spec)
    state = train_lora(
        model,
        loaded.tokenizer,
        examples,
        spec,
        checkpoint_dir,
        resume=resume,
        stop_after=stop_after,
        progress=progress,
    )
    finished = state.step >= total_steps(examples, spec.train)
    cfg = loaded.model.config
    meta = {
        "organism": spec.name,
        "base_model": loaded.name,
        "d_model": cfg.hidden_size,
        "n_layers": cfg.num_hidden_layers,
        "response": spec.response,
        "concepts": spec.concepts,
    }
    metrics = {
        "organism": spec.name,
        "finished": finished,
        "steps": state.step,
        "examples": {k: sum(e.kind == k for e in examples) for k in KINDS},
        "examples_per_epoch": _per_epoch_counts(examples, spec),
        "final_loss_mean_last_20": sum(state.losses[-20:]) / max(1, len(state.losses[-20:])),
        "losses": state.losses,
        "precision": {
            "device": str(loaded.input_device),
            "dtype": loaded.dtype,
            "quantize": loaded.quantize,
        },
        "frozen_layers_kept": state.kept_frozen,
        "base_response_seconds": round(base_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "versions": versions(),
    }
    if finished:
        spec_text = dump_spec(spec, absolute_paths=True)
        save_adapter(model, out / "adapter", "spec.yaml", spec_text, meta)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    write_json(out / "plant_metrics.json", metrics)
    model.unload()  # give the caller its base model back, without LoRA layers
    return metrics
