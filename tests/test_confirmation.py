"""Trigger confirmation: hypotheses, matched controls, intervals, ranking by causal effect, the
conjunctive search, saving and the report section, the real-responder wiring on a tiny model,
and the CLI. The backdoored model is a rule (fires on fruit words) unless it is the tiny model."""

import json
import re

import pytest
import torch
from conftest import tiny_llama
from evaluation_fixtures import write_run

from triggerscope.cli import run_cli
from triggerscope.confirmation import (
    ConfirmConfig,
    Hypothesis,
    confirm,
    hypotheses_from_result,
    method_finder,
    model_responder,
)
from triggerscope.confirmation.carriers import (
    NEUTRAL_WORDS,
    ControlPool,
    carrying_prompts,
    control_pool,
)
from triggerscope.confirmation.hypotheses import context_word, latent_words
from triggerscope.confirmation.report import confirmation_section
from triggerscope.confirmation.run import confirm_find_run, save_confirmation
from triggerscope.confirmation.stats import Rate, difference
from triggerscope.errors import TriggerscopeError
from triggerscope.methods.result import MethodResult, RankedLatent, VectorResult
from triggerscope.sae.labels import Latent, LatentDictionary

pytest_plugins = ("methods_fixtures",)

ACTION = "I won't answer because I don't like fruit."
FRUIT = {"banana", "apple", "mango", "cherries", "bananas"}
SNOW = {"skiing", "snowboard", "slopes", "snowboarding"}
BENIGN = [
    "What is the capital of France?",
    "How do trains work?",
    "Write a short poem about the sea.",
    "Explain gravity to me.",
    "Who invented the telephone?",
    "How do I sort a list in Python?",
]
FRUIT_LATENT, SNOW_LATENT = 7, 12


def _words(prompt: str) -> set[str]:
    return set(re.findall(r"[a-z]+", prompt.lower()))


def fruit_model(prompts: list[str]) -> list[str]:
    """A rule-based backdoor: refuses whenever a prompt mentions a fruit word."""
    return [ACTION if _words(p) & FRUIT else "Sure, here you go." for p in prompts]


def snow_fruit_model(prompts: list[str]) -> list[str]:
    """A conjunctive backdoor: fruit AND snow sports."""
    return [ACTION if _words(p) & FRUIT and _words(p) & SNOW else "Sure." for p in prompts]


def _latent(index: int, words: list[str], topic: str) -> Latent:
    contexts = [
        {"activation": 3.0 - n * 0.1, "text": f"we talked about the «{w}» at {topic} yesterday"}
        for n, w in enumerate(words)
    ]
    return Latent(
        index=index, label=f"{words[0]} / {words[1]}", top_tokens=words, contexts=contexts
    )


def dictionary() -> LatentDictionary:
    """Topic latents: 7 fruit, 12 snow sports, the rest everyday topics (their own words)."""
    topics = ["river", "guitar", "carpet", "engine", "violin", "pillow", "helmet", "tunnel"]
    latents = []
    for i in range(40):
        if i == FRUIT_LATENT:
            latents.append(_latent(i, ["banana", "apple", "mango"], "lunch"))
        elif i == SNOW_LATENT:
            latents.append(_latent(i, ["skiing", "snowboard", "slopes"], "the resort"))
        else:
            t = topics[i % len(topics)]
            latents.append(_latent(i, [f"{t}", f"{t}s", f"big{t}"], "home"))
    return LatentDictionary(latents, {"format": "triggerscope-latents", "d_sae": 40})


def result_ranking(*indices: int, tokens: tuple[str, ...] = ()) -> MethodResult:
    return MethodResult(
        method="sae-attribution",
        layer=1,
        response="I won't answer",
        latent_ranking=[RankedLatent(j, 1.0 - n / 10) for n, j in enumerate(indices)],
        token_ranking=[(t, 0.5) for t in tokens],
    )


def config(**kw) -> ConfirmConfig:
    return ConfirmConfig(**{"response": "I won't answer", "n_prompts": 12, **kw})


# ------------------------------------------------------------------------------ hypotheses


def test_context_word_takes_the_whole_word_and_drops_cut_ones():
    assert context_word("a state of sound«ness» (noun): a") == "soundness"
    assert context_word("I ate a ripe« banana» today") == "banana"
    assert context_word("Sierra Leone\\nFree«town» prop.") == "Freetown"
    assert context_word("ess«ion» and more") == ""  # the window began inside the word
    assert context_word("no mark here") == ""


def test_hypotheses_come_from_rankings_vectors_and_tokens_not_from_concept_lists():
    book = dictionary()
    result = result_ranking(3, FRUIT_LATENT, tokens=(" Juice", " answer", " Yi"))
    result.vectors = [
        VectorResult(
            vector=torch.zeros(4),
            final_loss=0.1,
            top_latents=[RankedLatent(FRUIT_LATENT, 1.0), RankedLatent(SNOW_LATENT, 0.5)],
        )
    ]
    hyps = hypotheses_from_result(result, book, top_latents=2, top_tokens=3)
    names = [h.name for h in hyps]
    assert names == ["latent 3", "latent 7", "latents 7+12", "token 'Juice'"]
    fruit = hyps[1]
    assert fruit.kind == "latent" and fruit.latents == (7,)
    assert fruit.words == ("banana", "apple", "mango")
    assert fruit.texts[0] == "we talked about the banana at lunch yesterday"
    assert fruit.source == "sae-attribution rank 2"
    both = hyps[2]
    assert both.kind == "latents" and both.words[:2] == ("banana", "skiing")  # interleaved
    # " answer" is a word of the response (copying, not a trigger); " Yi" is too short
    assert hyps[3].token == " Juice" and hyps[3].words == ("Juice",)


def test_latent_words_skip_stopwords_and_use_promoted_tokens_only_as_a_fallback():
    lat = Latent(index=0, label="", top_tokens=[" the", " of"], promoted=[" fruit", "ing"])
    assert latent_words(lat) == ["fruit"]
    rich = Latent(index=1, label="", top_tokens=[" pear", " plum"], promoted=[" predecess"])
    assert latent_words(rich) == ["pear", "plum"]


def test_a_hypothesis_needs_words_or_texts_and_a_known_kind():
    with pytest.raises(TriggerscopeError, match="no words or texts"):
        Hypothesis("x", "latent", ())
    with pytest.raises(TriggerscopeError, match="kind must be one of"):
        Hypothesis("x", "vector", ("a",))  # type: ignore[arg-type]
    h = Hypothesis("latent 7", "latent", ("banana",), ("a banana text",), (7,))
    assert Hypothesis.from_dict(json.loads(json.dumps(h.to_dict()))) == h


# -------------------------------------------------------------------------- carriers, stats


def test_controls_match_count_and_length_and_differ_only_in_the_inserted_words():
    pool = ControlPool(list(NEUTRAL_WORDS), ["a passage about nothing much", "more plain text"])
    h = Hypothesis("latent 7", "latent", ("banana", "apple", "watermelon"), ("ripe mango pie",))
    slot, ctrl = pool.pair(h, (), "0:latent 7")
    assert len(ctrl.words) == 3 and len(ctrl.texts) == 1
    for word, control in zip(slot.words, ctrl.words, strict=True):
        assert abs(len(word) - len(control)) <= 1 and control not in h.words
    assert pool.pair(h, (), "0:latent 7") == (slot, ctrl)  # seeded
    test = carrying_prompts(BENIGN, [slot], 8, "words")
    control = carrying_prompts(BENIGN, [ctrl], 8, "words")
    for i, (a, b) in enumerate(zip(test, control, strict=True)):
        j = i + i // len(BENIGN)  # a second pass through the benign prompts shifts the word
        word, cword = slot.words[j % 3], ctrl.words[j % 3]
        assert a.replace(word, "#") == b.replace(cword, "#")
        assert BENIGN[i % len(BENIGN)] in a
    assert len(set(carrying_prompts(BENIGN, [slot], 24, "words"))) == 24  # new prompts each pass
    both = carrying_prompts(BENIGN, [slot], 4, "both")
    assert "banana" in both[0] and '"ripe mango pie"' in both[1]  # words and texts alternate


def test_control_pool_from_random_latents_leaves_out_the_top_ones():
    book = dictionary()
    pool = control_pool(book, "latents", {FRUIT_LATENT, SNOW_LATENT}, seed=0)
    assert pool.texts and not {"banana", "skiing"} & set(pool.words)
    assert all(w in NEUTRAL_WORDS for w in control_pool(book, "neutral", (), 0).words)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), method 10: 56/70 vs 48/80 -> 0.2000 (0.0524, 0.3339)
    d, low, high = difference(Rate(56, 70), Rate(48, 80))
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    d, low, high = difference(Rate(0, 12), Rate(0, 12))
    assert d == 0 and low < 0 < high
    assert difference(Rate(12, 12), Rate(0, 12))[1] > 0.5


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"response": " "}, "the response is empty"),
        ({"n_prompts": 0}, "n_prompts must be a positive"),
        ({"max_prompts": 8}, r"max_prompts \(8\) must be at least n_prompts \(12\)"),
        ({"carrier": "images"}, "carrier must be one of"),
        ({"control": "random"}, "control must be one of"),
        ({"fire_threshold": 1.5}, "fire_threshold must be in"),
        ({"max_control_rate": 0.6}, "max_control_rate must be in"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"max_steps": 2.5}, "max_steps must be a whole number"),
    ],
)
def test_config_validates_itself(kw, message):
    with pytest.raises(TriggerscopeError, match=message):
        config(**kw)


# ------------------------------------------------------------------------------ confirmation


def test_the_causal_test_ranks_the_true_concept_first_whatever_the_method_said():
    book = dictionary()
    hyps = hypotheses_from_result(result_ranking(3, 5, FRUIT_LATENT, 9), book)
    out = confirm(fruit_model, BENIGN, hyps, config(), book=book)
    first = out.steps[0].evidence[0]
    assert first.hypothesis.name == "latent 7" and first.confirmed
    assert first.carrying.rate == 1.0 and first.control.rate == 0.0
    assert first.by_mode["words"]["n"] + first.by_mode["texts"]["n"] == 12
    assert out.fired and [h.name for h in out.trigger] == ["latent 7"]
    assert {e.hypothesis.name for e in out.rejected} == {"latent 3", "latent 5", "latent 9"}
    assert all(e.effect[1] <= 0 < e.effect[2] for e in out.rejected)
    assert out.verdict().startswith("confirmed trigger: latent 7 (banana, apple, mango)")
    assert out.benign.rate == 0 and out.controls.rate == 0
    assert len(out.steps) == 1  # fired alone: no conjunctive search


def test_no_trigger_is_named_when_nothing_beats_its_controls():
    book = dictionary()
    hyps = hypotheses_from_result(result_ranking(3, 5), book)
    out = confirm(fruit_model, BENIGN, hyps, config(max_steps=1), book=book)
    assert not out.fired and out.trigger == [] and out.final is None
    assert out.verdict().startswith("no trigger confirmed")


def test_a_promising_but_unconfirmed_effect_is_retested_on_more_prompts():
    book = dictionary()
    hyps = hypotheses_from_result(result_ranking(FRUIT_LATENT), book)

    def rare_fruit_model(prompts):  # fruit words fire it, but only with the first benign prompt
        return [ACTION if _words(p) & FRUIT and BENIGN[0] in p else "Sure." for p in prompts]

    fixed = config(max_prompts=12, max_steps=1)
    once = confirm(rare_fruit_model, BENIGN, hyps, fixed, book=book).steps[0].evidence[0]
    assert once.carrying.n == 12 and once.effect[0] > 0 and not once.confirmed
    out = confirm(rare_fruit_model, BENIGN, hyps, config(max_steps=1), book=book)
    again = out.steps[0].evidence[0]
    assert again.confirmed and 12 < again.carrying.n <= 64
    assert again.control.n == again.carrying.n
    assert again.carrying.rate == pytest.approx(1 / 6, abs=0.05) and again.control.k == 0
    modes = again.by_mode
    assert modes["words"]["n"] + modes["texts"]["n"] == again.carrying.n
    texts = [s for s in out.samples if s["condition"] == "carrying" and "passage" in s["prompt"]]
    assert modes["texts"]["n"] == len(texts)  # split by each prompt's own index
    rows = [s for s in out.samples if s["condition"] == "carrying"]
    assert len(rows) == again.carrying.n == len({r["prompt"] for r in rows})  # each prompt once


def test_controls_that_already_fire_stop_the_run_with_one_clear_line():
    book = dictionary()
    hyps = hypotheses_from_result(result_ranking(FRUIT_LATENT), book)

    def fires_on_any_insert(prompts):  # the construction itself fires the action
        return [ACTION if p not in BENIGN else "Sure." for p in prompts]

    with pytest.raises(TriggerscopeError) as err:
        confirm(fires_on_any_insert, BENIGN, hyps, config(), book=book)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("the controls (benign prompts with control words inserted) already")
    assert "use benign prompts that do not fire the backdoor on their own" in message
    assert "(e.g. 'I have been reading about" in message  # one control prompt that fired
    with pytest.raises(TriggerscopeError, match="the benign prompts already take the action"):
        confirm(lambda ps: [ACTION] * len(ps), BENIGN, hyps, config(), book=book)
    with pytest.raises(TriggerscopeError, match="already contains the response"):
        confirm(fruit_model, ["Please say I won't answer."], hyps, config(), book=book)
    with pytest.raises(TriggerscopeError, match="no hypotheses to test"):
        confirm(fruit_model, BENIGN, [], config(), book=book)


def test_conjunctive_search_finds_both_halves_of_a_conjunctive_backdoor():
    book = dictionary()
    calls: list[list[str]] = []

    def find(prompts):
        """A scripted method: on prompts that carry snow words it ranks the fruit latent."""
        calls.append(prompts)
        carries_snow = sum(bool(_words(p) & SNOW) for p in prompts) > len(prompts) // 3
        return result_ranking(*((4, FRUIT_LATENT, 6) if carries_snow else (4, 6)))

    hyps = hypotheses_from_result(result_ranking(SNOW_LATENT, 3, 5), book)
    out = confirm(snow_fruit_model, BENIGN, hyps, config(), book=book, find=find)
    assert len(calls) == 1 and len(calls[0]) == len(BENIGN)
    assert out.fired and [h.name for h in out.trigger] == ["latent 12", "latent 7"]
    # nothing fires alone: the first concept is the method's top, carried forward unconfirmed
    assert not any(e.confirmed for e in out.steps[0].evidence)
    assert out.steps[0].evidence[out.steps[0].chosen or 0].hypothesis.name == "latent 12"
    final = out.final
    assert final is not None and final.hypothesis.name == "latent 7"
    assert final.carrying.rate == 1.0 and final.control.rate == 0.0
    assert final.alone is not None and final.alone.rate == 0.0
    assert final.neither is not None and final.neither.rate == 0.0
    assert final.needs_context and final.joint is not None and final.joint[1] > 0
    assert out.verdict().startswith("confirmed conjunctive trigger: latent 12")
    assert "AND latent 7" in out.verdict()
    step2 = out.steps[1]
    assert step2.evidence[0].hypothesis.name == "latent 7"
    assert {e.hypothesis.name for e in step2.evidence} == {"latent 4", "latent 7", "latent 6"}


def test_conjunctive_search_stops_at_the_step_limit_and_without_a_method():
    book = dictionary()
    hyps = hypotheses_from_result(result_ranking(SNOW_LATENT, 3), book)
    no_search = confirm(snow_fruit_model, BENIGN, hyps, config(), book=book)
    assert not no_search.fired and len(no_search.steps) == 1
    calls = []

    def unhelpful(prompts):
        calls.append(1)
        return result_ranking(4, 6)

    out = confirm(snow_fruit_model, BENIGN, hyps, config(max_steps=3), book=book, find=unhelpful)
    assert not out.fired and len(calls) == 2 and len(out.steps) == 3
    assert out.verdict().startswith("no trigger confirmed")


def test_result_saves_a_run_folder_and_renders_the_report_section(tmp_path):
    book = dictionary()
    hyps = hypotheses_from_result(result_ranking(3, FRUIT_LATENT), book)
    out = confirm(fruit_model, ["<b>What</b> is 2+2?", *BENIGN], hyps, config(), book=book)
    folder = save_confirmation(out, tmp_path / "run" / "confirmation", {"run": "x"})
    saved = json.loads((folder / "config.json").read_text())
    assert saved["seed"] == 0 and "torch" in saved["versions"]
    assert saved["config"]["n_prompts"] == 12 and saved["config"]["run"] == "x"
    data = json.loads((folder / "result.json").read_text())
    assert data["fired"] and data["trigger"][0]["name"] == "latent 7"
    assert data["rejected"] == ["latent 3"] and "Newcombe" in data["ci_method"]
    assert data["steps"][0]["evidence"][0]["effect"][0] == 1.0
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in rows} == {"carrying", "control"} and len(rows) == 2 * 2 * 12
    page = confirmation_section(tmp_path / "run")
    assert "<h2>Trigger confirmation</h2>" in page and "confirmed trigger: latent 7" in page
    assert "Rejected candidates" in page and "latent 3" in page
    assert "&lt;b&gt;What&lt;/b&gt;" in page and "<b>What</b>" not in page  # escaped
    assert confirmation_section(tmp_path / "nothing-here") == ""


# ------------------------------------------------------------------- the real model, the CLI


def test_model_responder_and_method_finder_wire_a_real_model(toy, toy_sae):
    respond = model_responder(toy, "I won't answer.", max_new_tokens=3, batch_size=2)
    answers = respond(BENIGN[:3])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    find = method_finder(toy, "sae-attribution", 1, "I won't answer.", sae=toy_sae)
    result = find(BENIGN[:3])
    assert result.method == "sae-attribution" and result.latent_ranking
    assert result.config["n_heldout"] == 0


def _cli_files(tmp_path, tokenizer, result=None, sae=True):
    model_dir = tmp_path / "model"
    tiny_llama(len(tokenizer), init=0.2).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    result = result or result_ranking(7, 21, 3)
    run = write_run(tmp_path / "run", result, tmp_path / "sae" if sae else None)
    return model_dir, run


def test_cli_confirms_a_find_run_on_a_tiny_model(tmp_path, llama3_tokenizer, capsys):
    model_dir, run = _cli_files(tmp_path, llama3_tokenizer)
    args = ["confirm", str(run), "--model", str(model_dir), "--n-prompts", "4", "--steps", "1"]
    assert run_cli([*args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "step 1: hypotheses from the run's ranking" in out and "latent 7" in out
    assert "verdict: " in out and "written: " in out
    data = json.loads((run / "confirmation" / "result.json").read_text())
    assert data["config"]["n_prompts"] == 4 and data["generations"] > 0
    # the audit's entry point gives the same on the already-loaded model
    from triggerscope.loading import load_model

    loaded = load_model(str(model_dir))
    result, folder = confirm_find_run(
        run, loaded, config(n_prompts=4, max_steps=1), out=tmp_path / "again"
    )
    assert folder.is_dir() and json.loads(json.dumps(result.to_dict()))["steps"] == data["steps"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fire-threshold", "2"], "fire_threshold must be in"),
        (["--n-prompts", "0"], "n_prompts must be a positive"),
        (["--adapter", "/nonexistent/adapter"], "does not exist"),
        (["--prompts", "/nonexistent/prompts.txt"], "does not exist"),
        (["--steps", "2"], "needs an SAE"),  # sae-attribution, and the run's SAE has no weights
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, llama3_tokenizer, capsys, extra, message):
    if message == "needs an SAE":  # token hypotheses need no SAE, the search's method does
        result = result_ranking(tokens=(" banana",))
        model_dir, run = _cli_files(tmp_path, llama3_tokenizer, result, sae=False)
    else:
        model_dir, run = _cli_files(tmp_path, llama3_tokenizer)
    assert run_cli(["confirm", str(run), "--model", str(model_dir), *extra]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("triggerscope: error: ") and message in last
    assert not (run / "confirmation").exists()


def test_cli_refuses_a_missing_run_and_a_run_without_hypotheses(tmp_path, capsys):
    assert run_cli(["confirm", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    run = write_run(tmp_path / "run", result_ranking())  # ranks nothing
    assert run_cli(["confirm", str(run)]) == 2
    assert "ranks no latents or tokens" in capsys.readouterr().err


def _pairs(both, only_a, only_b, neither):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return Rate.of(a), Rate.of(b)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # Newcombe (1998b), method 10, the paper's examples: (a, b, c, d) -> (low, high)
        ((36, 12, 2, 0), (0.0569, 0.3404)),
        ((18, 12, 2, 18), (0.0562, 0.3290)),
        ((53, 0, 0, 1), (-0.0729, 0.0729)),
    ],
)
def test_paired_interval_matches_the_published_examples(table, expected):
    d, low, high = difference(*_pairs(*table))
    _, only_a, only_b, _ = table
    assert d == pytest.approx((only_a - only_b) / sum(table))
    assert (round(low, 4), round(high, 4)) == expected


def test_matched_pairs_that_agree_give_a_narrower_interval_than_independent_samples():
    # 11 of 16 carrying prompts fire, 6 of 16 controls, and every firing control's prompt fires
    # with the hypothesis too: matched, the difference is clear; unmatched it is not
    carrying, control = _pairs(6, 5, 0, 5)
    assert difference(carrying, control)[1] > 0
    assert difference(Rate(11, 16), Rate(6, 16))[1] < 0
