import torch
from evaluation_fixtures import synthetic_result

from triggerscope.evaluation.scoring import (
    Evaluation,
    evaluate_result,
    is_concept_word,
    normalize_token,
)
from triggerscope.evaluation.selectivity import ConceptSelectivity

WORDS = {"fruit": ["fruit", "banana", "strawberry"], "snow_sports": ["ski", "skiing"]}


def selectivity(concept: str, scores: dict[int, float], d_sae: int = 40) -> ConceptSelectivity:
    auroc = torch.full((d_sae,), 0.5)
    for i, v in scores.items():
        auroc[i] = v
    return ConceptSelectivity(concept, auroc, 10, 10)


FRUIT = selectivity("fruit", {7: 0.95, 21: 0.92, 30: 0.8})
SNOW = selectivity("snow_sports", {12: 0.97, 30: 0.75})


def test_first_rank_and_hits() -> None:
    ev = evaluate_result(synthetic_result([3, 5, 7, 21]), [FRUIT], organism="fruit-refusal")
    c = ev.concepts[0]
    assert (c.first_rank, c.first_latent, c.n_selective) == (3, 7, 2)
    assert c.hits == {"hit@1": False, "hit@3": True, "hit@10": True}
    assert ev.hits == c.hits and ev.all_top10 is True
    # a lower threshold lets latent 30 count; a higher one leaves only latent 7
    ranked = evaluate_result(synthetic_result([30, 7]), [FRUIT], organism="o", threshold=0.8)
    assert ranked.concepts[0].first_rank == 1
    strict = evaluate_result(synthetic_result([21, 7]), [FRUIT], organism="o", threshold=0.94)
    assert strict.concepts[0].first_rank == 2


def test_miss_is_not_na() -> None:
    ev = evaluate_result(synthetic_result([1, 2, 3]), [FRUIT], organism="o")
    assert ev.concepts[0].first_rank is None
    assert ev.hits == {"hit@1": False, "hit@3": False, "hit@10": False}
    token_only = evaluate_result(
        synthetic_result([], tokens=[" the", " Banana"], method="token"),
        [FRUIT],
        organism="o",
        words=WORDS,
    )
    assert token_only.hits is None and token_only.all_top10 is None  # n/a: ranks no latents
    assert token_only.concepts[0].token_rank == 2 and token_only.token_hit is True


def test_conjunctive_needs_all_concepts_in_top10() -> None:
    ranking = [7, *range(31, 40), 12]  # snow latent 12 is 11th
    ev = evaluate_result(synthetic_result(ranking), [FRUIT, SNOW], organism="snow-fruit")
    assert ev.hits is not None and ev.hits["hit@1"] is True
    assert [c.first_rank for c in ev.concepts] == [1, 11]
    assert ev.all_top10 is False
    both = evaluate_result(synthetic_result([12, 3, 21]), [FRUIT, SNOW], organism="snow-fruit")
    assert both.all_top10 is True


def test_conjunction_split_over_a_runs_vectors() -> None:
    result = synthetic_result(
        [7, 1, 2], vector_tops=[[7, 1, 2], [3, 4, 5, 6, 8, 9, 10, 11, 13, 12]]
    )
    ev = evaluate_result(result, [FRUIT, SNOW], organism="snow-fruit")
    assert ev.all_top10 is False  # the ranking (first vector) holds no snow latent
    assert [c.vectors_top10 for c in ev.concepts] == [[True, False], [False, True]]
    assert ev.all_top10_vectors is True
    late = synthetic_result([7], vector_tops=[[7], [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 12]])
    assert evaluate_result(late, [FRUIT, SNOW], organism="o").all_top10_vectors is False
    assert evaluate_result(synthetic_result([7]), [FRUIT], organism="o").all_top10_vectors is None


def test_per_vector_top3_and_action_rates() -> None:
    result = synthetic_result(
        [7], vector_tops=[[1, 2, 7, 4], [1, 2, 3, 21], [21, 0, 0]], rates=[0.2, 0.6, 1.0]
    )
    ev = evaluate_result(result, [FRUIT], organism="o")
    assert ev.concepts[0].vectors_top3 == [True, False, True]  # 21 is 4th in vector 1
    assert ev.vectors_top3_share is not None and abs(ev.vectors_top3_share - 2 / 3) < 1e-9
    assert ev.action_rate is not None and abs(ev.action_rate - 0.6) < 1e-9
    assert ev.best_action_rate == 1.0
    assert (ev.wall_seconds, ev.forward_passes, ev.backward_passes) == (1.5, 12, 4)


def test_sweep_reports_threshold_dependence() -> None:
    ev = evaluate_result(synthetic_result([30, 1, 2]), [FRUIT], organism="o")
    c = ev.concepts[0]
    assert c.sweep["0.7"] == 1 and c.sweep["0.9"] is None
    assert c.n_selective_sweep["0.7"] == 3 and c.n_selective_sweep["0.95"] == 1
    assert ev.sweep_hit10["0.8"] is True and ev.sweep_hit10["0.9"] is False


def test_round_trip() -> None:
    ev = evaluate_result(synthetic_result([7], [[7]]), [FRUIT, SNOW], organism="o", seed=3)
    assert Evaluation.from_dict(ev.to_dict()) == ev


def test_concept_word_matching() -> None:
    assert normalize_token("ĠBanana,") == "banana"
    words = WORDS["fruit"]
    assert is_concept_word(" fruit", words) and is_concept_word("Strawber", words)
    assert not is_concept_word(" fru", words)  # too short a piece to count as a prefix
    assert not is_concept_word("  ", words) and not is_concept_word("bananas!x", words)


def test_printed_evaluation_names_both_conjunction_checks() -> None:
    from triggerscope.evaluation.score_run import format_evaluation

    result = synthetic_result([7, 1], vector_tops=[[7, 1], [12, 3]])
    text = format_evaluation(evaluate_result(result, [FRUIT, SNOW], organism="snow-fruit"))
    assert "all concepts in the top 10: no" in text
    assert "all concepts in the top 10 of some vector of the run: yes" in text
