"""Score one finished run folder against an organism's planted trigger (evaluation.json).

This is what `triggerscope evaluate RUN_DIR --organism NAME` does after `triggerscope find`; the
report then shows the scores. The SAE is the run's own unless another is given; the model is
the organism's base model unless another is given, and is only run when the selectivity of the
SAE's latents is not cached yet.
"""

from __future__ import annotations

from pathlib import Path

from triggerscope.atomic import write_json
from triggerscope.errors import TriggerscopeError
from triggerscope.evaluation.bench import EVALUATION_FILE
from triggerscope.evaluation.probes import concept_words, probes_for
from triggerscope.evaluation.scoring import Evaluation, evaluate_result
from triggerscope.evaluation.selectivity import DEFAULT_THRESHOLD, concept_selectivity
from triggerscope.factual import (
    FactualTask,
    is_factual,
    load_task,
    model_knowledge,
    require_known,
)
from triggerscope.organisms.spec import load_spec


def score_run(
    run_dir: str | Path,
    organism: str,
    *,
    sae: str | Path | None = None,
    model: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    quantize: str = "none",
    threshold: float = DEFAULT_THRESHOLD,
    cache_dir: Path | None = None,
) -> Evaluation:
    from triggerscope.loading import load_model
    from triggerscope.reports.run_folder import load_run
    from triggerscope.sae.formats import load_sae
    from triggerscope.sae.labels import sae_fingerprint

    run = load_run(run_dir)
    spec = load_task(organism) if is_factual(organism) else load_spec(organism)
    probes = probes_for(spec.concepts, spec.name)
    words = {c: concept_words(c) for c in spec.concepts}
    sae_path = sae or run.setting("sae_path", "sae", kind=str)
    if not sae_path:
        raise TriggerscopeError(
            f"{run.path} does not say which SAE it used; pass --sae FOLDER (the run's SAE)"
        )
    loaded = load_model(model or spec.base_model, device=device, dtype=dtype, quantize=quantize)
    if isinstance(spec, FactualTask):  # refuse to score a fact the model does not know
        require_known(model_knowledge(loaded, spec))
    the_sae = load_sae(sae_path, device=str(loaded.input_device))
    layer = the_sae.cfg.layer if the_sae.cfg.layer is not None else run.result.layer
    sha = sae_fingerprint(the_sae)
    selectivity = [
        concept_selectivity(
            loaded.model,
            loaded.tokenizer,
            the_sae,
            probe,
            model_id=loaded.name,
            layer=layer,
            cache_dir=cache_dir,
            sae_sha=sha,
        )
        for probe in probes
    ]
    seed = run.meta.get("seed")
    evaluation = evaluate_result(
        run.result,
        selectivity,
        organism=spec.name,
        words=words,
        threshold=threshold,
        seed=seed if isinstance(seed, int) else None,
    )
    write_json(run.path / EVALUATION_FILE, evaluation.to_dict())
    return evaluation


def format_evaluation(ev: Evaluation) -> str:
    lines = [f"{ev.method} on {ev.organism} (selective: AUROC >= {ev.threshold:g})"]
    for c in ev.concepts:
        rank = "-" if c.first_rank is None else str(c.first_rank)
        hits = "n/a" if c.hits is None else " ".join(f"{k} {int(v)}" for k, v in c.hits.items())
        line = f"  {c.concept}: {c.n_selective} selective latents; first rank {rank}; {hits}"
        if c.vectors_top3:
            n_top3, n_vec = sum(c.vectors_top3), len(c.vectors_top3)
            line += f"; vectors with one in their top 3: {n_top3}/{n_vec}"
        if c.token_hit is not None:
            line += f"; concept word in top tokens: {'yes' if c.token_hit else 'no'}"
        lines.append(line)
        sweep = ", ".join(f">={t}: {'-' if r is None else r}" for t, r in c.sweep.items())
        lines.append(f"    first rank by threshold: {sweep}")
    if ev.all_top10 is not None and len(ev.concepts) > 1:
        lines.append(f"  all concepts in the top 10: {'yes' if ev.all_top10 else 'no'}")
    if ev.all_top10_vectors is not None and len(ev.concepts) > 1:
        lines.append(
            f"  all concepts in the top 10 of some vector of the run: "
            f"{'yes' if ev.all_top10_vectors else 'no'}"
        )
    if ev.action_rate is not None:
        base = ev.baseline_action_rate
        lines.append(
            f"  action rate under steering: mean {ev.action_rate:.2f}, best "
            f"{ev.best_action_rate:.2f}" + (f" (unsteered {base:.2f})" if base is not None else "")
        )
    lines.append(
        f"  {ev.wall_seconds:.1f} s, {ev.forward_passes} forward / {ev.backward_passes} "
        f"backward passes"
    )
    return "\n".join(lines)
