"""The offline server sends ``reasoning_content`` the way reasoning models' OpenAI-compatible servers do."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import dspy
import pytest
from streamll.testing import OfflineLMServer
from streamll.testing.lm_server import iter_sse_events, tokenize

THINKING = "The user wants a definition. Keep it to one sentence."


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    lm_server.reset()
    yield lm_server
    lm_server.reset()


def _post(server: OfflineLMServer, **extra: Any) -> http.client.HTTPResponse:
    messages = dspy.ChatAdapter().format(dspy.Signature("question -> answer"), demos=[], inputs={"question": "Hi?"})
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "offline", "messages": messages, **extra}))
    return conn.getresponse()


def test_streamed_reply_sends_reasoning_deltas_before_the_content(server: OfflineLMServer) -> None:
    server.configure(reasoning_content=THINKING, answers={"answer": "Hello."})
    events = list(iter_sse_events(iter(_post(server, stream=True).readline, b"")))
    deltas = [event["choices"][0]["delta"] for event in events[:-1] if event["choices"]]
    reasoning = [delta for delta in deltas if delta.get("reasoning_content")]
    content = [delta for delta in deltas if delta.get("content")]
    assert "".join(delta["reasoning_content"] for delta in reasoning) == THINKING
    assert all(delta["content"] is None for delta in reasoning)  # DeepSeek / vLLM style
    assert len(reasoning) == len(tokenize(THINKING))
    assert deltas.index(reasoning[-1]) < deltas.index(content[0])
    assert "".join(delta["content"] for delta in content).startswith("[[ ## answer ## ]]")


def test_plain_reply_carries_reasoning_content_in_the_message(server: OfflineLMServer) -> None:
    server.configure(reasoning_content=lambda request: f"Thinking about {request.inputs['question']}")
    message = json.loads(_post(server).read())["choices"][0]["message"]
    assert message["reasoning_content"] == "Thinking about Hi?"
    assert message["content"].startswith("[[ ## answer ## ]]")


def test_no_reasoning_by_default_or_when_the_callable_says_none(server: OfflineLMServer) -> None:
    assert "reasoning_content" not in json.loads(_post(server).read())["choices"][0]["message"]
    server.configure(reasoning_content=lambda request: None)
    events = list(iter_sse_events(iter(_post(server, stream=True).readline, b"")))
    assert not any(event["choices"] and "reasoning_content" in event["choices"][0]["delta"] for event in events[:-1])


@pytest.mark.parametrize("engine", ["auto", "litellm"])
def test_dspy_receives_the_reasoning(server: OfflineLMServer, engine: str) -> None:
    """DSPy's LM output holds the reasoning, as it does for a real reasoning model."""
    server.configure(reasoning_content=THINKING)
    lm = server.lm(**({} if engine == "auto" else {"engine": engine}))
    outputs = lm("Hi?")
    assert outputs[0]["reasoning_content"] == THINKING
