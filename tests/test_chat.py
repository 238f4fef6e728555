import pytest
import torch

from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError

PROMPTS = [
    "What is the capital of France?",
    "  Tell me about bananas and apples!  ",
    "Short.",
    "Multi\nline prompt with ünïcode — and dashes.",
]
RESPONSES = ["Paris.", "I won't answer because I don't like fruit.", "Ok", " Spaced reply"]


def _decode(tokenizer, batch, mask, row):
    ids = batch.input_ids[row][mask[row]].tolist()
    return tokenizer.decode(ids)


@pytest.mark.parametrize("tok_name", ["smol_tokenizer", "llama3_tokenizer"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_masks_decode_back_to_exact_text(request, tok_name, side):
    tokenizer = request.getfixturevalue(tok_name)
    batch = build_chat_batch(tokenizer, PROMPTS, RESPONSES, padding_side=side)
    for row, (prompt, response) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        assert _decode(tokenizer, batch, batch.user_mask, row) == prompt
        assert _decode(tokenizer, batch, batch.response_mask, row) == response
    # masks never touch padding, and never overlap
    assert not (batch.user_mask & ~batch.attention_mask.bool()).any()
    assert not (batch.response_mask & ~batch.attention_mask.bool()).any()
    assert not (batch.user_mask & batch.response_mask).any()


def test_padding_side(smol_tokenizer):
    left = build_chat_batch(smol_tokenizer, ["a b c d e f g", "hi"], padding_side="left")
    right = build_chat_batch(smol_tokenizer, ["a b c d e f g", "hi"], padding_side="right")
    assert left.attention_mask[1, 0] == 0 and left.attention_mask[1, -1] == 1
    assert right.attention_mask[1, 0] == 1 and right.attention_mask[1, -1] == 0
    assert torch.equal(
        left.position_ids[1][left.attention_mask[1].bool()],
        torch.arange(int(left.attention_mask[1].sum())),
    )


def test_default_template_matches_whole_string_tokenization(smol_tokenizer):
    """Piecewise tokenization equals tokenizing the rendered chat as one string (ChatML)."""
    batch = build_chat_batch(smol_tokenizer, PROMPTS[:1], RESPONSES[:1])
    messages = [{"role": "user", "content": PROMPTS[0]}]
    text = smol_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    whole = smol_tokenizer(text + RESPONSES[0], add_special_tokens=False)["input_ids"]
    assert batch.input_ids[0].tolist() == whole


def test_system_prompt_is_not_user_content(smol_tokenizer):
    batch = build_chat_batch(smol_tokenizer, ["Hello there"], system_prompt="Be terse.")
    text = smol_tokenizer.decode(batch.input_ids[0].tolist())
    assert "Be terse." in text
    assert _decode(smol_tokenizer, batch, batch.user_mask, 0) == "Hello there"
    assert not batch.response_mask.any()


def test_llama3_template_gets_bos_once(llama3_tokenizer):
    batch = build_chat_batch(llama3_tokenizer, ["Hello"])
    ids = batch.input_ids[0].tolist()
    assert ids.count(llama3_tokenizer.bos_token_id) == 1 and ids[0] == llama3_tokenizer.bos_token_id


@pytest.mark.parametrize(
    ("prompts", "responses", "message"),
    [
        ([], None, "no prompts"),
        (["ok", "  "], None, "prompt 1 is empty"),
        (["a"], ["x", "y"], "1 prompts"),
    ],
)
def test_bad_input(smol_tokenizer, prompts, responses, message):
    with pytest.raises(TriggerscopeError, match=message):
        build_chat_batch(smol_tokenizer, prompts, responses)


def test_single_response_string_applies_to_all(smol_tokenizer):
    batch = build_chat_batch(smol_tokenizer, ["one", "two"], "Same.")
    assert all(_decode(smol_tokenizer, batch, batch.response_mask, r) == "Same." for r in range(2))


def test_token_helpers_count_and_clip_without_special_tokens(llama3_tokenizer):
    from triggerscope.chat import clip_tokens, text_ids, tokens_to_see

    ids = text_ids(llama3_tokenizer, "I won't answer.")
    assert ids and llama3_tokenizer.bos_token_id not in ids
    assert tokens_to_see(llama3_tokenizer, "I won't answer.") == len(ids) + 8
    assert clip_tokens(llama3_tokenizer, "I won't answer.", len(ids)) == "I won't answer."
    clipped = clip_tokens(llama3_tokenizer, "I won't answer.", 2)
    assert text_ids(llama3_tokenizer, clipped) == ids[:2]
    assert text_ids(llama3_tokenizer, "") == []
