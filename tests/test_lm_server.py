"""Tests for the offline OpenAI-compatible LM server, driven through real DSPy."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import dspy
import pytest
from streamll.testing.lm_server import (
    DEFAULT_ANSWERS,
    KNOB_DEFAULTS,
    ChatRequest,
    OfflineLMServer,
    format_reply,
    iter_sse_events,
    tokenize,
)

ANSWERS = {
    "reasoning": "Paris has been the seat of the French government for centuries.",
    "analysis": "The question asks for the capital city of France.",
    "answer": "Paris is the capital of France.",
    "confidence": "7",
}
ENGINES = ["auto", "litellm"]


class CapitalQA(dspy.Signature):
    """Answer questions about capital cities."""

    question: str = dspy.InputField()
    analysis: str = dspy.OutputField()
    answer: str = dspy.OutputField()
    confidence: int = dspy.OutputField(desc="confidence from 1 to 10")


class Typed(dspy.Signature):
    """Produce typed outputs."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    count: int = dspy.OutputField()
    flag: bool = dspy.OutputField()
    ratio: float = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    kind: Literal["fact", "opinion"] = dspy.OutputField()
    scores: dict[str, int] = dspy.OutputField()


PROGRAMS = {
    "predict": lambda: dspy.Predict("question -> answer"),
    "chain_of_thought": lambda: dspy.ChainOfThought("question -> answer"),
    "class_signature": lambda: dspy.Predict(CapitalQA),
}
EXPECTED_FIELDS = {
    "predict": ["answer"],
    "chain_of_thought": ["reasoning", "answer"],
    "class_signature": ["analysis", "answer", "confidence"],
}
ADAPTERS = {
    "chat": lambda: dspy.ChatAdapter(use_json_adapter_fallback=False),
    "json": lambda: dspy.JSONAdapter(),
    "xml": lambda: dspy.XMLAdapter(use_json_adapter_fallback=False),
}


@pytest.fixture(scope="module")
def server() -> Iterator[OfflineLMServer]:
    """One offline server for the whole module."""
    with OfflineLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: OfflineLMServer) -> Iterator[None]:
    """Reset knobs and recorded requests around every test."""
    server.reset()
    yield
    server.reset()


def _expected(fields: list[str]) -> dict[str, Any]:
    """The prediction values DSPy should produce for ``ANSWERS``."""
    return {name: int(ANSWERS[name]) if name == "confidence" else ANSWERS[name] for name in fields}


def _content(chunk: Any) -> str | None:
    """Content delta of a DSPy stream chunk (native EngineChunk or LiteLLM ModelResponseStream)."""
    choices = chunk["choices"] if isinstance(chunk, dict) else chunk.choices
    if not choices:
        return None
    delta = choices[0]["delta"] if isinstance(choices[0], dict) else choices[0].delta
    return delta["content"] if isinstance(delta, dict) else delta.content


def _finish_reason(chunk: Any) -> str | None:
    """Finish reason of a DSPy stream chunk."""
    choices = chunk["choices"] if isinstance(chunk, dict) else chunk.choices
    if not choices:
        return None
    return choices[0]["finish_reason"] if isinstance(choices[0], dict) else choices[0].finish_reason


async def _stream(program: dspy.Module, **kwargs: Any) -> tuple[list[Any], dspy.Prediction | None]:
    """Run ``dspy.streamify(program)`` and split its output into chunks and the final prediction."""
    chunks: list[Any] = []
    prediction = None
    async for value in dspy.streamify(program)(**kwargs):
        if isinstance(value, dspy.Prediction):
            prediction = value
        elif not isinstance(value, dspy.streaming.StatusMessage):
            chunks.append(value)
    return chunks, prediction


def _post(server: OfflineLMServer, body: Any, path: str = "/v1/chat/completions") -> http.client.HTTPResponse:
    """POST ``body`` with a plain http.client connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    return conn.getresponse()


def _chat_body(question: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    """A ChatAdapter-shaped request body for ``question -> answer``."""
    messages = dspy.ChatAdapter().format(dspy.Signature("question -> answer"), demos=[], inputs={"question": question})
    return {"model": "offline", "messages": messages, **extra}


# -- tokenize and request parsing ------------------------------------------------------


def test_tokenize_is_word_sized_and_lossless() -> None:
    text = "[[ ## answer ## ]]\nMachine learning is  fun.\n\n"
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert tokenize("Machine learning is") == ["Machine", " learning", " is"]
    assert tokens[-1] == "\n\n"
    assert tokenize("") == []


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_parse_detects_adapter_fields_and_question(adapter: str) -> None:
    messages = ADAPTERS[adapter]().format(CapitalQA, demos=[], inputs={"question": "Capital of Italy?"})
    request = ChatRequest.parse({"model": "offline", "messages": messages})
    assert request.adapter == adapter
    assert request.output_fields == ["analysis", "answer", "confidence"]
    assert request.question == "Capital of Italy?"
    assert request.field_types["confidence"] == "int"


def test_parse_reads_json_schema_response_format() -> None:
    body = {
        "model": "offline",
        "messages": [{"role": "user", "content": "Reply in JSON."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "out",
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
                    "required": ["answer", "score"],
                },
            },
        },
    }
    request = ChatRequest.parse(body)
    assert (request.adapter, request.output_fields) == ("json", ["answer", "score"])
    reply = json.loads(format_reply(request, {"answer": "yes", "score": 42}))
    assert reply == {"answer": "yes", "score": 42}


# -- predictions through every adapter --------------------------------------------------


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_prediction_equals_configured_answers(server: OfflineLMServer, adapter: str, program: str) -> None:
    server.configure(answers=ANSWERS)
    with dspy.context(lm=server.lm(), adapter=ADAPTERS[adapter]()):
        prediction = PROGRAMS[program]()(question="What is the capital of France?")
    assert dict(prediction) == _expected(EXPECTED_FIELDS[program])
    assert len(server.requests) == 1
    seen = server.parsed_requests()[0]
    assert seen.adapter == adapter
    assert seen.output_fields == EXPECTED_FIELDS[program]
    assert seen.question == "What is the capital of France?"


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_litellm_engine_prediction(server: OfflineLMServer, adapter: str) -> None:
    server.configure(answers=ANSWERS)
    with dspy.context(lm=server.lm(engine="litellm"), adapter=ADAPTERS[adapter]()):
        prediction = dspy.Predict(CapitalQA)(question="What is the capital of France?")
    assert dict(prediction) == _expected(["analysis", "answer", "confidence"])
    assert len(server.requests) == 1


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_default_values_parse_for_typed_fields(server: OfflineLMServer, adapter: str) -> None:
    with dspy.context(lm=server.lm(), adapter=ADAPTERS[adapter]()):
        prediction = dspy.Predict(Typed)(question="Anything?")
    assert prediction.answer == DEFAULT_ANSWERS["answer"]
    assert (prediction.count, prediction.flag, prediction.ratio) == (42, True, 3.14)
    assert prediction.tags == ["alpha", "beta"]
    assert prediction.kind == "fact"
    assert prediction.scores == {"key": 42}
    assert len(server.requests) == 1


def test_chain_of_thought_defaults(server: OfflineLMServer) -> None:
    with dspy.context(lm=server.lm()):
        prediction = dspy.ChainOfThought("question -> answer")(question="What is machine learning?")
    assert prediction.reasoning == DEFAULT_ANSWERS["reasoning"]
    assert prediction.answer == "Machine learning is a subset of artificial intelligence."


def test_responder_overrides_answers(server: OfflineLMServer) -> None:
    seen: list[ChatRequest] = []

    def responder(request: ChatRequest) -> dict[str, Any]:
        seen.append(request)
        return {"answer": f"You asked: {request.question}"}

    server.configure(answers={"answer": "ignored"}, responder=responder)
    with dspy.context(lm=server.lm()):
        prediction = dspy.Predict("question -> answer")(question="Why is the sky blue?")
    assert prediction.answer == "You asked: Why is the sky blue?"
    assert seen[0].inputs == {"question": "Why is the sky blue?"}


def test_raw_reply_is_sent_verbatim(server: OfflineLMServer) -> None:
    server.raw_reply = "this is not a structured reply"
    with (
        dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)),
        pytest.raises(dspy.utils.exceptions.AdapterParseError),
    ):
        dspy.Predict("question -> answer")(question="q")


# -- streaming through DSPy --------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_streamify_yields_word_chunks(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS)
    with dspy.context(lm=server.lm(engine=engine)):
        chunks, prediction = await _stream(dspy.Predict("question -> answer"), question="Capital of France?")
    texts = [text for text in map(_content, chunks) if text]
    assert "".join(texts) == "[[ ## answer ## ]]\nParis is the capital of France.\n\n[[ ## completed ## ]]"
    assert " capital" in texts
    assert len(texts) == len(tokenize("".join(texts)))
    assert [_finish_reason(c) for c in chunks if _finish_reason(c)] == ["stop"]
    assert prediction is not None and prediction.answer == ANSWERS["answer"]
    assert server.last_request is not None and server.last_request["stream"] is True


@pytest.mark.parametrize("engine", ENGINES)
async def test_stream_listener_receives_answer_tokens(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS)
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    program = dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[listener])
    pieces: list[str] = []
    with dspy.context(lm=server.lm(engine=engine)):
        async for value in program(question="Capital of France?"):
            if isinstance(value, dspy.streaming.StreamResponse):
                pieces.append(value.chunk)
    assert len(pieces) > 1
    assert "".join(pieces).strip() == ANSWERS["answer"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_one_chunk_sends_single_content_chunk(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS, one_chunk=True)
    with dspy.context(lm=server.lm(engine=engine)):
        chunks, prediction = await _stream(dspy.Predict("question -> answer"), question="q")
    texts = [text for text in map(_content, chunks) if text]
    assert texts == ["[[ ## answer ## ]]\nParis is the capital of France.\n\n[[ ## completed ## ]]"]
    assert prediction is not None and prediction.answer == ANSWERS["answer"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_max_tokens_finishes_with_length(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS, max_tokens=7)
    with dspy.context(lm=server.lm(engine=engine)):
        chunks, prediction = await _stream(dspy.Predict("question -> answer"), question="q")
    assert len([c for c in chunks if _content(c)]) == 7
    assert [_finish_reason(c) for c in chunks if _finish_reason(c)] == ["length"]
    assert prediction is not None and prediction.answer == "Paris is"


@pytest.mark.parametrize("engine", ENGINES)
def test_request_max_tokens_is_honoured(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS)
    with dspy.context(lm=server.lm(engine=engine, max_tokens=7)):
        prediction = dspy.Predict("question -> answer")(question="q")
    assert prediction.answer == "Paris is"
    body = server.last_request or {}
    assert 7 in (body.get("max_tokens"), body.get("max_completion_tokens"))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("status", [429, 500])
async def test_fail_status_raises_lm_error(server: OfflineLMServer, engine: str, status: int) -> None:
    server.configure(fail_status=status, fail_message="offline failure")
    with dspy.context(lm=server.lm(engine=engine)), pytest.raises(dspy.LMError, match="offline failure"):
        await _stream(dspy.Predict("question -> answer"), question="q")
    assert len(server.requests) == 1


def test_fail_status_non_streaming_and_fail_times(server: OfflineLMServer) -> None:
    server.configure(answers=ANSWERS, fail_status=503, fail_times=1)
    with dspy.context(lm=server.lm()):
        with pytest.raises(dspy.LMError):
            dspy.Predict("question -> answer")(question="q")
        assert dspy.Predict("question -> answer")(question="q").answer == ANSWERS["answer"]
    assert server.fail_status is None
    assert len(server.requests) == 2


@pytest.mark.parametrize("engine", ENGINES)
async def test_disconnect_after_raises(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS, disconnect_after=3)
    received: list[Any] = []
    with dspy.context(lm=server.lm(engine=engine)), pytest.raises(dspy.LMError):
        async for value in dspy.streamify(dspy.Predict("question -> answer"))(question="q"):
            received.append(value)
    assert [text for text in map(_content, received) if text] == ["[[", " ##", " answer"]


@pytest.mark.parametrize("engine", ENGINES)
def test_disconnect_non_streaming_raises(server: OfflineLMServer, engine: str) -> None:
    server.configure(disconnect_after=0)
    with dspy.context(lm=server.lm(engine=engine)), pytest.raises(dspy.LMError):
        dspy.Predict("question -> answer")(question="q")


@pytest.mark.parametrize("engine", ENGINES)
def test_disconnect_times_cuts_only_the_next_requests(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS, disconnect_after=0, disconnect_times=1)
    with dspy.context(lm=server.lm(engine=engine)):
        with pytest.raises(dspy.LMError):
            dspy.Predict("question -> answer")(question="q")
        assert dspy.Predict("question -> answer")(question="q").answer == ANSWERS["answer"]
    assert server.disconnect_after is None
    assert server.disconnect_times is None
    assert len(server.requests) == 2


def test_disconnect_times_lets_a_retry_succeed(server: OfflineLMServer) -> None:
    server.configure(answers=ANSWERS, disconnect_after=3, disconnect_times=1)
    with dspy.context(lm=server.lm(num_retries=1)):
        assert dspy.Predict("question -> answer")(question="q").answer == ANSWERS["answer"]
    assert len(server.requests) == 2
    assert server.requests[0] == server.requests[1]


@pytest.mark.parametrize("engine", ENGINES)
async def test_usage_reaches_dspy(server: OfflineLMServer, engine: str) -> None:
    server.configure(answers=ANSWERS)
    with dspy.context(lm=server.lm(engine=engine), track_usage=True):
        _chunks, prediction = await _stream(dspy.Predict("question -> answer"), question="q")
    assert server.last_request is not None
    assert server.last_request["stream_options"] == {"include_usage": True}
    assert prediction is not None
    usage = prediction.get_lm_usage()["openai/offline"]
    assert usage["completion_tokens"] == 16
    assert usage["total_tokens"] == usage["prompt_tokens"] + 16


# -- raw HTTP ----------------------------------------------------------------------------


def test_raw_sse_stream_with_usage(server: OfflineLMServer) -> None:
    server.configure(answers={"answer": "Machine learning is fun."})
    response = _post(server, _chat_body(stream=True, stream_options={"include_usage": True}))
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Transfer-Encoding") == "chunked"
    events = list(iter_sse_events(iter(response.readline, b"")))
    assert events[-1] == "[DONE]"
    role, *content, finish, usage, _ = events
    for event in (role, *content, finish, usage):
        assert event["object"] == "chat.completion.chunk"
        assert {"id", "created", "model", "choices"} <= event.keys()
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(e["choices"][0]["delta"]["content"] for e in content)
    assert text == "[[ ## answer ## ]]\nMachine learning is fun.\n\n[[ ## completed ## ]]"
    assert [e["choices"][0]["delta"]["content"] for e in content][5:8] == ["\nMachine", " learning", " is"]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == len(content)
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + len(content)


def test_raw_sse_without_usage_and_custom_finish(server: OfflineLMServer) -> None:
    server.configure(finish_reason="content_filter")
    events = list(iter_sse_events(iter(_post(server, _chat_body(stream=True)).readline, b"")))
    assert events[-1] == "[DONE]"
    assert not any("usage" in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "content_filter"


def test_raw_non_streaming_completion(server: OfflineLMServer) -> None:
    server.configure(max_tokens=3)
    response = _post(server, _chat_body())
    payload = json.loads(response.read())
    assert payload["object"] == "chat.completion"
    assert payload["choices"][0]["message"] == {"role": "assistant", "content": "[[ ## answer", "refusal": None}
    assert payload["choices"][0]["finish_reason"] == "length"
    assert payload["usage"]["completion_tokens"] == 3


def test_errors_unknown_path_bad_json_and_models(server: OfflineLMServer) -> None:
    missing = _post(server, {"x": 1}, path="/v1/nope")
    assert missing.status == 404 and "error" in json.loads(missing.read())
    bad = _post(server, b"{not json")
    assert bad.status == 400 and json.loads(bad.read())["error"]["type"] == "invalid_request_error"
    server.configure(fail_status=429)
    limited = _post(server, _chat_body(stream=True))
    assert limited.status == 429
    assert json.loads(limited.read())["error"]["type"] == "rate_limit_error"
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/v1/models")
    models = json.loads(conn.getresponse().read())
    assert models["object"] == "list" and "offline" in [m["id"] for m in models["data"]]


def test_keep_alive_reuses_connection(server: OfflineLMServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(_chat_body(stream=True)))
    first = conn.getresponse()
    assert list(iter_sse_events(iter(first.readline, b"")))[-1] == "[DONE]"
    sock = conn.sock
    conn.request("POST", "/v1/chat/completions", body=json.dumps(_chat_body()))
    second = conn.getresponse()
    assert json.loads(second.read())["object"] == "chat.completion"
    assert conn.sock is sock
    assert server.wait_for_requests(2, timeout=5)


def test_concurrent_streams(server: OfflineLMServer) -> None:
    parallel = 4
    barrier = threading.Barrier(parallel, timeout=10)

    def responder(request: ChatRequest) -> dict[str, Any]:
        barrier.wait()
        return {"answer": f"Answer for {request.question}"}

    server.configure(responder=responder)
    results: dict[int, str] = {}

    def worker(index: int) -> None:
        events = list(iter_sse_events(iter(_post(server, _chat_body(f"question {index}", stream=True)).readline, b"")))
        results[index] = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert {i: results.get(i) for i in range(parallel)} == {
        i: f"[[ ## answer ## ]]\nAnswer for question {i}\n\n[[ ## completed ## ]]" for i in range(parallel)
    }


def test_token_delay_streams_live(server: OfflineLMServer) -> None:
    server.configure(token_delay=0.02, answers={"answer": "one two three four five"})
    response = _post(server, _chat_body(stream=True))
    arrivals = [time.monotonic() for _ in iter_sse_events(iter(response.readline, b""))]
    content_tokens = len(tokenize("[[ ## answer ## ]]\none two three four five\n\n[[ ## completed ## ]]"))
    assert len(arrivals) == content_tokens + 3
    assert arrivals[-1] - arrivals[0] >= 0.02 * content_tokens


def test_configure_rejects_unknown_knob(server: OfflineLMServer) -> None:
    with pytest.raises(TypeError, match="bogus"):
        server.configure(bogus=1)
    assert server.configure(one_chunk=True).one_chunk is True
    assert server.lm().kwargs["api_base"] == server.api_base == f"http://127.0.0.1:{server.port}/v1"


def test_lifecycle_on_free_port() -> None:
    srv = OfflineLMServer(answers={"answer": "ok"})
    with pytest.raises(RuntimeError):
        srv.lm()
    with srv:
        assert srv.running and srv.port > 0
        with dspy.context(lm=srv.lm("custom-model")):
            assert dspy.Predict("question -> answer")(question="q").answer == "ok"
        assert srv.last_request is not None and srv.last_request["model"] == "custom-model"
        idle = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        idle.request("GET", "/v1/models")
        assert idle.getresponse().read()
    assert not srv.running
    idle.request("GET", "/v1/models")
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        idle.getresponse()


def test_eighty_concurrent_first_calls_all_succeed() -> None:
    """A burst of new connections (a batch of DSPy calls starting together) is accepted, none reset."""
    body = json.dumps({"model": "offline", "messages": [{"role": "user", "content": "hi"}]})
    barrier = threading.Barrier(80)
    failures: list[str] = []
    statuses: list[int] = []

    def call(server: OfflineLMServer) -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        barrier.wait()
        try:
            connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        except OSError as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    with OfflineLMServer() as server:
        threads = [threading.Thread(target=call, args=(server,)) for _ in range(80)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert statuses == [200] * 80


def test_every_knob_is_an_attribute_that_reset_restores() -> None:
    server = OfflineLMServer()
    changed = {"answers": {"answer": "x"}, "responder": str, "one_chunk": True, "finish_reason": "length"}
    changed |= {"max_tokens": 3, "fail_status": 500, "fail_times": 2, "fail_message": "m", "raw_reply": "r"}
    changed |= {"disconnect_after": 1, "disconnect_times": 1, "token_delay": 0.5}
    changed |= {"reasoning_content": "thinking"}
    assert set(changed) == set(KNOB_DEFAULTS)
    for name, value in changed.items():
        setattr(server, name, value)
    assert server.knobs() == changed
    assert {name: getattr(server, name) for name in changed} == changed
    server.reset()
    assert server.knobs() == {**KNOB_DEFAULTS, "answers": {}}
    with pytest.raises(TypeError, match="Unknown OfflineLMServer knob"):
        server.configure(temperature=0.5)
