"""The offline LM server's native tool calls: the OpenAI wire shapes, streamed and not."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from streamll.testing import OfflineLMServer
from streamll.testing.lm_server import iter_sse_events

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}]
CALLS = [
    {"name": "weather", "arguments": {"city": "Paris"}},
    {"name": "population", "arguments": {"city": "Paris", "year": 2024}, "id": "call_given"},
]


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    lm_server.reset()
    lm_server.configure(responder=lambda request: {"tool_calls": CALLS})
    yield lm_server
    lm_server.reset()


def post(server: OfflineLMServer, **body: Any) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather?"}], **body}
    conn.request("POST", "/v1/chat/completions", body=json.dumps(payload), headers={"Content-Type": "application/json"})
    return conn.getresponse()


def test_tool_calls_stream_like_openai(server: OfflineLMServer) -> None:
    response = post(server, tools=TOOLS, stream=True, stream_options={"include_usage": True})
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    events = list(iter_sse_events(iter(response.readline, b"")))
    role, *deltas, finish, usage, done = events
    assert done == "[DONE]"
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": None}
    calls = [event["choices"][0]["delta"]["tool_calls"] for event in deltas]
    assert all(len(call) == 1 for call in calls)
    heads = [call[0] for call in calls if "id" in call[0]]
    assert [(head["index"], head["type"], head["function"]) for head in heads] == [
        (0, "function", {"name": "weather", "arguments": ""}),
        (1, "function", {"name": "population", "arguments": ""}),
    ]
    assert heads[0]["id"].startswith("call_") and heads[1]["id"] == "call_given"
    for index, call in enumerate(CALLS):
        fragments = [c[0]["function"]["arguments"] for c in calls if c[0]["index"] == index and "id" not in c[0]]
        assert len(fragments) > 1 and json.loads("".join(fragments)) == call["arguments"]
        assert all(set(c[0]) == {"index", "function"} for c in calls if c[0]["index"] == index and "id" not in c[0])
    assert finish["choices"][0]["finish_reason"] == "tool_calls" and finish["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(deltas) - len(CALLS)


def test_tool_calls_unstreamed_and_ids_stable(server: OfflineLMServer) -> None:
    first = json.loads(post(server, tools=TOOLS).read())
    second = json.loads(post(server, tools=TOOLS).read())
    (choice,) = first["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and message["role"] == "assistant"
    assert [
        (c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]
    ] == [("function", call["name"], call["arguments"]) for call in CALLS]
    assert [c["id"] for c in message["tool_calls"]] == [c["id"] for c in second["choices"][0]["message"]["tool_calls"]]


def test_requests_without_tools_get_text(server: OfflineLMServer) -> None:
    payload = json.loads(post(server).read())
    assert "tool_calls" not in payload["choices"][0]["message"]
    assert payload["choices"][0]["finish_reason"] == "stop"


def test_tool_calls_from_answers_and_a_failing_responder(server: OfflineLMServer) -> None:
    server.configure(responder=None, answers={"tool_calls": CALLS[:1]})
    payload = json.loads(post(server, tools=TOOLS).read())
    assert [c["function"]["name"] for c in payload["choices"][0]["message"]["tool_calls"]] == ["weather"]

    def broken(request: Any) -> dict[str, Any]:
        raise RuntimeError("no plan")

    server.configure(responder=broken)
    response = post(server, tools=TOOLS)
    assert response.status == 500 and "no plan" in json.loads(response.read())["error"]["message"]
