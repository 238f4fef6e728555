"""Do a run's vectors point at the trigger through their top-activating held-out texts?

    .venv/bin/python benchmarks/example_readout.py RUN [RUN ...] --concept fruit --texts 192

For each `triggerscope find` run folder: its vector 0, read through the first `--texts` texts
of the SAE corpus's held-out split (balanced over sources, cut to 64 tokens, as the
`example_readout` setting reads them) with both scores (`projection`, `cosine`). Prints where
the texts that contain a word of the concept's word list (triggerscope/data/concepts/) rank,
and the top examples. The texts' activations are computed once for all runs (the base model:
the built-in adapters leave the SAE layers untouched; pass --adapter otherwise).

The corpus's "prompts" source includes the built-in organisms' training prompts (triggered ones
too), which an auditor's corpus would not hold: `--without-organism-prompts` drops every text
that is a line of a file under triggerscope/data/organisms/ before reading.
"""

from __future__ import annotations

import argparse
import re

import torch

from triggerscope.evaluation.probes import concept_words
from triggerscope.loading import load_model
from triggerscope.methods.examples import load_texts, rank_examples, text_activations
from triggerscope.reports.run_folder import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--concept", default="fruit")
    parser.add_argument("--texts", type=int, default=192)
    parser.add_argument("--show", type=int, default=6)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--without-organism-prompts", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(None)
    if args.adapter:
        from triggerscope.organisms.verify import attach_adapter

        loaded = attach_adapter(loaded, args.adapter)
    texts, source = load_texts(None, args.texts)
    if args.without_organism_prompts:
        from triggerscope.organisms.builtin import DATA
        from triggerscope.prompts import normalize_prompt

        lines = {
            normalize_prompt(line)
            for file in (DATA / "organisms").rglob("*.txt")
            for line in file.read_text(encoding="utf-8").splitlines()
            if line.strip()
        }
        pool, _ = load_texts(None, args.texts + 400)
        texts = [t for t in pool if normalize_prompt(t) not in lines][: args.texts]
        source += ", without the organisms' prompts"
    words = concept_words(args.concept)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b")
    concept = {i for i, t in enumerate(texts) if pattern.search(t.lower())}
    print(f"{len(texts)} texts from {source}; {len(concept)} contain a {args.concept} word")
    for run in args.runs:
        folder = load_run(run)
        result = folder.result
        found = text_activations(
            loaded,
            texts,
            result.layer,
            system_prompt=folder.setting("system_prompt", kind=str),
        )
        print(f"\n## {run} ({result.method}, targets {result.config.get('targets', 'fixed')})")
        for score in ("projection", "cosine"):
            ranked = rank_examples(
                found, loaded.tokenizer, result.vectors[0].vector, len(texts), score
            )
            ranks = [r for r, ex in enumerate(ranked) if ex.index in concept]
            print(f"- {score}: ranks of the {args.concept} texts (0 = top): {ranks[:10]}")
            for ex in ranked[: args.show]:
                print(f"    {ex.score:8.3f}  {ex.text[:110]}")


if __name__ == "__main__":
    main()
