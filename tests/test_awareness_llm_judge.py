import pytest
from fake_openai import chat_reply, fake_server, free_port_url

from triggerscope.awareness.judge import make_judge
from triggerscope.awareness.judge_eval import evaluate, load_labelled
from triggerscope.awareness.llm_judge import LLMJudge, load_prompt, parse_label
from triggerscope.errors import TriggerscopeError


def test_prompt_states_the_papers_rule():
    system, user = load_prompt()
    assert "mere mention does not count" in system.lower()
    assert "{trigger}" in user and "{reasoning}" in user


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("pivotal", "pivotal"),
        ("Mentioned.", "mentioned"),
        ("<think>maybe pivotal?</think>\nabsent", "absent"),
        ('{"label": "pivotal"}', "pivotal"),
    ],
)
def test_parse_label(reply, label):
    assert parse_label(reply) == label


def test_unparsable_reply_is_one_clear_error():
    with pytest.raises(TriggerscopeError, match="not one of pivotal"):
        parse_label("I cannot decide")


def test_llm_judge_against_a_local_fake_server(monkeypatch):
    monkeypatch.setenv("TRIGGERSCOPE_API_KEY", "sk-test")

    def reply(body):
        user = body["messages"][1]["content"]
        label = "pivotal" if "because" in user.lower() else "mentioned"
        return 200, chat_reply([label])

    with fake_server(reply) as (url, received):
        judge = make_judge("llm", base_url=url, model="judge-x")
        judge.check()
        labels = judge.judge_many([("Because of 2026, B.", "2026"), ("2026. A.", "2026")])
    assert labels == ["pivotal", "mentioned"]
    body = received[0]
    assert body["_path"] == "/v1/chat/completions" and body["model"] == "judge-x"
    assert body["temperature"] == 0 and body["_auth"] == "Bearer sk-test"
    assert "Trigger: 2026" in body["messages"][1]["content"]
    assert "Because of 2026, B." in body["messages"][1]["content"]


def test_llm_judge_accuracy_is_measurable_end_to_end():
    """A perfect fake judge (it knows the labels) scores 100%: the plumbing loses nothing."""
    truth = {(s.reasoning, s.trigger): s.label for s in load_labelled()}

    def reply(body):
        user = body["messages"][1]["content"]
        for (reasoning, trigger), label in truth.items():
            if f"Trigger: {trigger}\n" in user and f'"""\n{reasoning}\n"""' in user:
                return 200, chat_reply([label])
        return 200, chat_reply(["absent"])

    snippets = load_labelled()[:30]
    with fake_server(reply) as (url, _):
        result = evaluate(LLMJudge(url, "m"), snippets)
    assert result["accuracy"] == 1.0


def test_unreachable_endpoint_suggests_the_offline_judge():
    judge = LLMJudge(free_port_url(), "m", timeout=5)
    with pytest.raises(TriggerscopeError, match=r"cannot reach .*--judge rules"):
        judge.check()
    with pytest.raises(TriggerscopeError, match="cannot reach"):
        judge.judge("text", "2026")


def test_http_errors_and_bad_urls():
    with (
        fake_server(lambda body: (500, {"error": "boom"})) as (url, _),
        pytest.raises(TriggerscopeError, match="HTTP 500"),
    ):
        LLMJudge(url, "m").judge("text", "2026")
    with (
        fake_server(lambda body: (200, "not json")) as (url, _),
        pytest.raises(TriggerscopeError, match="did not answer with JSON"),
    ):
        LLMJudge(url, "m").judge("text", "2026")
    with pytest.raises(TriggerscopeError, match="not an http"):
        LLMJudge("localhost:8000", "m")
    with pytest.raises(TriggerscopeError, match="--judge-model"):
        LLMJudge("http://127.0.0.1:1/v1", "")
