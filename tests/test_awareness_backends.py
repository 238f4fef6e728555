import pytest
from fake_openai import chat_reply, fake_server, free_port_url

from triggerscope.awareness.backends import LocalGenerator, OpenAIGenerator
from triggerscope.errors import TriggerscopeError


def test_local_generator_shapes_and_seeding(tiny):
    gen = LocalGenerator(tiny, batch_size=3)
    kwargs = {"n": 2, "temperature": 1.0, "max_new_tokens": 5}
    a = gen.complete(["Hi", "Tell me about bananas"], ["", "Sure,"], seed=3, **kwargs)
    b = gen.complete(["Hi", "Tell me about bananas"], ["", "Sure,"], seed=3, **kwargs)
    assert a == b and len(a) == 2 and all(len(x) == 2 for x in a)


def test_local_prefill_conditions_the_continuation(tiny):
    gen = LocalGenerator(tiny)
    kwargs = {"n": 1, "temperature": 0.0, "max_new_tokens": 6, "seed": 0}
    plain = gen.complete(["Hi"], [""], **kwargs)
    prefilled = gen.complete(["Hi"], ["The quick brown fox"], **kwargs)
    assert plain != prefilled


def test_local_rejects_mismatched_inputs(tiny):
    with pytest.raises(TriggerscopeError, match="prefills"):
        LocalGenerator(tiny).complete(["a"], [], n=1, temperature=0, max_new_tokens=1, seed=0)
    with pytest.raises(TriggerscopeError, match="at least 1"):
        LocalGenerator(tiny).complete(["a"], [""], n=0, temperature=0, max_new_tokens=1, seed=0)


def test_openai_generator_payloads_and_prefill_continuation():
    def reply(body):
        return 200, chat_reply([f"cont{i}" for i in range(body["n"])], reasoning="I think")

    with fake_server(reply) as (url, received):
        gen = OpenAIGenerator(url, "qwen3-mcq", system_prompt="Be brief.", workers=2)
        out = gen.complete(
            ["p1", "p2"], ["", "Let me think"], n=3, temperature=1.0, max_new_tokens=9, seed=5
        )
    assert [len(x) for x in out] == [3, 3]
    assert out[0][0] == "<think>\nI think\n</think>\ncont0"
    by_prompt = {b["messages"][1]["content"]: b for b in received}
    plain, pre = by_prompt["p1"], by_prompt["p2"]
    assert plain["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "continue_final_message" not in plain and plain["max_tokens"] == 9
    assert pre["messages"][-1] == {"role": "assistant", "content": "Let me think"}
    assert pre["continue_final_message"] is True and pre["add_generation_prompt"] is False
    assert "chat_template_kwargs" not in pre


def test_qwen3_thinking_switch_follows_the_condition():
    with fake_server(lambda body: (200, chat_reply(["B"]))) as (url, received):
        gen = OpenAIGenerator(url, "qwen3", thinking_switch=True, workers=1)
        kwargs = {"n": 1, "temperature": 1.0, "max_new_tokens": 4, "seed": 0}
        gen.complete(["p"], [""], reasoning=False, **kwargs)
        gen.complete(["p"], [""], reasoning=True, **kwargs)
    switches = [b["chat_template_kwargs"]["enable_thinking"] for b in received]
    assert switches == [False, True]


def test_openai_generator_errors():
    with (
        fake_server(lambda body: (200, chat_reply(["only one"]))) as (url, _),
        pytest.raises(TriggerscopeError, match="'n' parameter"),
    ):
        OpenAIGenerator(url, "m").complete(
            ["p"], [""], n=2, temperature=1, max_new_tokens=1, seed=0
        )
    with pytest.raises(TriggerscopeError, match=r"cannot reach .*vllm serve"):
        OpenAIGenerator(free_port_url(), "m", timeout=5).complete(
            ["p"], [""], n=1, temperature=1, max_new_tokens=1, seed=0
        )
    with pytest.raises(TriggerscopeError, match="--served-model"):
        OpenAIGenerator("http://127.0.0.1:1/v1", "")
