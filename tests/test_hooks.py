import pytest
import torch

from triggerscope.chat import build_chat_batch
from triggerscope.errors import TriggerscopeError
from triggerscope.hooks import decoder_layers, record, resolve_layer, run_to_layer, steer

PROMPTS = ["What is the capital of France?", "Tell me about bananas!"]


@pytest.fixture
def batch(llama3_tokenizer):
    return build_chat_batch(llama3_tokenizer, PROMPTS, "I won't answer.")


def _hidden(model, batch, layer):
    with record(model, [layer]) as store, torch.no_grad():
        model(**batch.model_inputs())
    return store[layer]


@pytest.mark.parametrize("layer", [1, -1])
def test_steered_equals_unsteered_plus_vector_at_mask(tiny, batch, layer):
    model = tiny.model
    vector = torch.randn(model.config.hidden_size)
    clean = _hidden(model, batch, layer)
    with steer(model, layer, vector, batch.user_mask):
        steered = _hidden(model, batch, layer)
    mask = batch.user_mask
    assert torch.equal(steered[mask], clean[mask] + vector)
    assert torch.equal(steered[~mask], clean[~mask])


def test_batch_of_vectors_one_per_row(tiny, batch):
    model = tiny.model
    vectors = torch.randn(len(batch), model.config.hidden_size)
    clean = _hidden(model, batch, 2)
    with steer(model, 2, vectors, batch.user_mask, scale=2.0):
        steered = _hidden(model, batch, 2)
    for row in range(len(batch)):
        m = batch.user_mask[row]
        assert torch.equal(steered[row][m], clean[row][m] + 2.0 * vectors[row])
        assert torch.equal(steered[row][~m], clean[row][~m])


def test_steering_changes_later_layers_only_downstream(tiny, batch):
    model = tiny.model
    vector = 5 * torch.randn(model.config.hidden_size)
    clean = {k: _hidden(model, batch, k) for k in (0, 3)}
    with steer(model, 1, vector, batch.user_mask):
        after = {k: _hidden(model, batch, k) for k in (0, 3)}
    assert torch.equal(after[0], clean[0])
    assert not torch.allclose(after[3], clean[3])


def test_hook_removed_after_exception(tiny, batch):
    model = tiny.model
    block = decoder_layers(model)[1]
    with pytest.raises(RuntimeError), steer(model, 1, torch.ones(32), batch.user_mask):
        assert len(block._forward_hooks) == 1
        raise RuntimeError("boom")
    assert len(block._forward_hooks) == 0
    with pytest.raises(RuntimeError), record(model, [0, 2]):
        raise RuntimeError("boom")
    assert all(len(b._forward_hooks) == 0 for b in decoder_layers(model))


def _generate_with_recording(model, batch, new_tokens, vector, steps=3):
    calls = []
    block = decoder_layers(model)[1]
    handle = block.register_forward_hook(lambda m, i, o: calls.append(o.detach().clone()))
    try:
        with steer(model, 0, vector, batch.user_mask, new_tokens=new_tokens):
            model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                max_new_tokens=steps,
                do_sample=False,
                pad_token_id=0,
            )
    finally:
        handle.remove()
    return calls


def test_generate_steers_prompt_only_or_new_tokens_too(tiny, llama3_tokenizer):
    model = tiny.model
    batch = build_chat_batch(llama3_tokenizer, PROMPTS)
    zero = torch.zeros(model.config.hidden_size)
    big = 50 * torch.randn(model.config.hidden_size)
    # the forced greedy path must be the same in every run to compare new-token states, so
    # compare the first (prompt) pass and the first incremental pass of each run
    base = _generate_with_recording(model, batch, "none", zero)
    prompt_only = _generate_with_recording(model, batch, "none", big)
    every = _generate_with_recording(model, batch, "all", big)
    assert base[0].shape[1] == batch.input_ids.shape[1] and base[1].shape[1] == 1
    assert not torch.allclose(prompt_only[0], base[0])  # prompt steered
    assert torch.equal(prompt_only[0], every[0])  # same prompt steering in both modes
    # new tokens: 'all' adds the vector at layer 0 on the new position, 'none' does not
    assert not torch.allclose(every[1], prompt_only[1])


def test_run_to_layer_matches_full_forward(tiny, batch):
    full = _hidden(tiny.model, batch, 2)
    partial = run_to_layer(tiny.model, 2, **batch.model_inputs())
    assert torch.equal(full, partial)


def test_layer_out_of_range(tiny):
    assert resolve_layer(tiny.model, -1) == 3
    with pytest.raises(TriggerscopeError, match="out of range"):
        resolve_layer(tiny.model, 4)
    with pytest.raises(TriggerscopeError, match="out of range"):
        resolve_layer(tiny.model, -5)


def test_wrong_vector_size_is_a_clear_error(tiny, batch):
    with (
        pytest.raises(TriggerscopeError, match="d_model is 32"),
        steer(tiny.model, 0, torch.ones(7), batch.user_mask),
    ):
        tiny.model(**batch.model_inputs())


def test_decoder_layers_through_peft(tiny):
    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(tiny.model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert len(decoder_layers(wrapped)) == 4
