"""Instrumentation changes nothing but what you can see: DSPy runs as it does without streamll."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer


class QA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


StreamedQA = streamll.instrument(stream_fields=["answer"])(type("StreamedQA", (QA,), {}))
BareQA = streamll.instrument(type("BareQA", (QA,), {}))


class ParallelQA(dspy.Module):
    """Answers several questions at once with dspy.Parallel (threads DSPy starts)."""

    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, questions: list[str]) -> list[Any]:
        parallel = dspy.Parallel(num_threads=3, disable_progress_bar=True)
        return parallel([(self.predict, {"question": q}) for q in questions])


StreamedParallelQA = streamll.instrument(stream_fields=["answer"])(type("StreamedParallelQA", (ParallelQA,), {}))


def echo(server: OfflineLMServer, delay: float = 0.0) -> None:
    def responder(request):  # type: ignore[no-untyped-def]
        return {"answer": f"The answer to {request.inputs.get('question', '')} is here."}

    server.configure(responder=responder, token_delay=delay)


def lm_spans(sink: MemorySink) -> list[tuple[Any, Any]]:
    """(start, end-or-error) event pairs of every LM span."""
    assert streamll.flush(10)
    starts = [e for e in sink.events if e.operation == "lm" and e.event_type == "start"]
    closes = [e for e in sink.events if e.operation == "lm" and e.event_type in ("end", "error")]
    assert len(starts) == len(closes)
    return list(zip(starts, closes, strict=True))


def test_a_sync_call_runs_in_the_callers_thread(lm) -> None:
    seen: list[threading.Thread] = []

    @streamll.instrument(stream_fields=["answer"])
    class Where(QA):
        def forward(self, question: str) -> dspy.Prediction:
            seen.append(threading.current_thread())
            return super().forward(question)

    Where()(question="where?")
    assert seen == [threading.current_thread()]


def test_only_predictors_with_a_chosen_field_stream_their_request(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    QA()(question="plain")
    BareQA()(question="bare")
    StreamedQA()(question="streamed")
    QA()(question="plain again, after the capture is installed")
    assert [bool(body.get("stream")) for body in server.requests] == [False, False, True, False]


def test_parallel_inside_an_instrumented_module_streams_each_sub_call(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    echo(server)
    questions = ["p-1", "p-2", "p-3"]
    plain = ParallelQA()(questions=questions)
    results = StreamedParallelQA()(questions=questions)
    assert (
        [r.answer for r in results] == [p.answer for p in plain] == [f"The answer to {q} is here." for q in questions]
    )
    spans = lm_spans(memory_sink)
    assert len(spans) == 3 and all(close.event_type == "end" for _, close in spans)
    module_start = next(e for e in memory_sink.events if e.operation == "module")
    streamed = set()
    for start, _ in spans:
        assert start.parent_id == module_start.event_id
        tokens = [t for t in memory_sink.tokens("answer") if t.parent_id == start.event_id]
        assert [t.token_index for t in tokens] == list(range(len(tokens)))
        assert {t.data["predictor"] for t in tokens} == {"StreamedParallelQA.predict"}
        streamed.add("".join(t.token for t in tokens))
    assert streamed == {r.answer for r in results}
    assert len({e.execution_id for e in memory_sink.events}) == 1


def test_batch_of_an_instrumented_module_streams_every_example(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    echo(server)
    examples = [dspy.Example(question=f"b-{i}").with_inputs("question") for i in range(3)]
    results = StreamedQA().batch(examples, num_threads=3, disable_progress_bar=True)
    assert [r.answer for r in results] == [f"The answer to b-{i} is here." for i in range(3)]
    assert streamll.flush(10)
    texts = {"".join(t.token for t in memory_sink.tokens("answer", execution_id=e)) for e in _executions(memory_sink)}
    assert texts == {r.answer for r in results}


def _executions(sink: MemorySink) -> set[str]:
    return {e.execution_id for e in sink.events}


class Count(dspy.Signature):
    """Count things."""

    question: str = dspy.InputField()
    answer: int = dspy.OutputField()


@streamll.instrument(stream_fields=["answer"])
class Counter(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(Count)

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


def test_chat_adapter_falls_back_to_json_as_without_streamll(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    server.configure(responder=lambda request: {"answer": "many" if request.adapter == "chat" else 42})
    prediction = Counter()(question="how many?")
    assert prediction.answer == 42
    assert [request.adapter for request in server.parsed_requests()] == ["chat", "json"]
    spans = lm_spans(memory_sink)
    assert [close.event_type for _, close in spans] == ["end", "end"]
    json_tokens = [t for t in memory_sink.tokens("answer") if t.parent_id == spans[1][0].event_id]
    assert "".join(t.token for t in json_tokens) == "42"


def test_a_reply_cut_mid_stream_is_retried_and_the_partial_text_is_marked(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    def responder(request):  # type: ignore[no-untyped-def]
        server.disconnect_after = None  # only the first request is cut
        return {"answer": "one two three four five six seven eight nine ten"}

    server.configure(responder=responder, disconnect_after=10)
    with dspy.context(lm=server.lm(num_retries=1), adapter=dspy.ChatAdapter()):
        prediction = StreamedQA()(question="cut once")
    assert prediction.answer == "one two three four five six seven eight nine ten"
    assert len(server.requests) == 2
    (first, first_close), (second, second_close) = lm_spans(memory_sink)
    assert (first_close.event_type, second_close.event_type) == ("error", "end")
    partial = [t for t in memory_sink.tokens("answer") if t.parent_id == first.event_id]
    retry = [t for t in memory_sink.tokens("answer") if t.parent_id == second.event_id]
    assert partial and partial[-1].finish_reason == "error"
    assert "".join(t.token for t in retry) == prediction.answer and retry[-1].finish_reason == "stop"


def test_streamify_of_an_instrumented_module_feeds_both(lm, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    import asyncio

    module = StreamedQA()
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    program = dspy.streamify(module, stream_listeners=[listener])

    async def run() -> tuple[list[Any], Any]:
        chunks, final = [], None
        async for item in program(question="both streams?"):
            if isinstance(item, dspy.streaming.StreamResponse):
                chunks.append(item)
            elif isinstance(item, dspy.Prediction):
                final = item
        return chunks, final

    chunks, final = asyncio.run(run())
    assert final is not None and chunks, "the user's own listener gets its StreamResponses"
    assert streamll.flush(10)
    assert memory_sink.text("answer") == final.answer


def test_a_fields_last_token_is_not_held_until_the_reply_ends(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    @streamll.instrument(stream_fields=["reasoning"])
    class ReasoningOnly(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.cot(question=question)

    server.configure(answers={"answer": " ".join(["word"] * 12)}, token_delay=0.03)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        ReasoningOnly()(question="when does reasoning end?")
    assert streamll.flush(10)
    last = memory_sink.tokens("reasoning")[-1]
    lm_end = next(e for e in memory_sink.of_type("end") if e.operation == "lm")
    assert last.finish_reason == "field_end"
    assert (lm_end.timestamp - last.timestamp).total_seconds() > 0.25, "sent when the answer began, not at the end"


def test_stream_fields_set_in_forward_belong_to_that_call(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    barrier = threading.Barrier(2, timeout=10)

    @streamll.instrument
    class PerCall(QA):
        def forward(self, question: str) -> dspy.Prediction:
            self._streamll_stream_fields = ["answer"] if question.startswith("yes") else []
            barrier.wait()  # both calls have made their choice before either predicts
            return super().forward(question)

    module = PerCall()
    lm = server.lm()
    results: dict[str, str] = {}

    def call(question: str) -> None:
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            results[question] = module(question=question).answer

    threads = [threading.Thread(target=call, args=(q,)) for q in ("yes-stream", "no-stream")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert streamll.flush(10)
    by_question = {
        e.data["inputs"]["question"]: e.execution_id for e in memory_sink.of_type("start") if e.operation == "module"
    }
    assert memory_sink.text("answer", execution_id=by_question["yes-stream"]) == results["yes-stream"]
    assert memory_sink.tokens(execution_id=by_question["no-stream"]) == []
    assert module._streamll_stream_fields == ()


class Boom(Exception):
    pass


def test_a_user_exception_is_the_plain_modules_exception(lm) -> None:
    class Failing(QA):
        def forward(self, question: str) -> dspy.Prediction:
            self.predict(question=question)
            raise Boom("user code failed")

    Instrumented = streamll.instrument(stream_fields=["answer"])(type("InstrumentedFailing", (Failing,), {}))
    caught = []
    for cls in (Failing, Instrumented):
        with pytest.raises(Boom) as info:
            cls()(question="fail")
        caught.append(info.value)
    plain, instrumented = caught
    assert instrumented.__context__ is plain.__context__ is None
    assert instrumented.__cause__ is plain.__cause__ is None
    lines = [len(traceback.format_exception(exc)) for exc in caught]
    assert lines[1] <= lines[0] + 6, lines


def test_a_misspelled_field_warning_points_at_the_callers_line(lm) -> None:
    @streamll.instrument(stream_fields=["answr_here"])
    class Typo(QA):
        pass

    with pytest.warns(UserWarning, match="answr_here") as record:
        Typo()(question="typo?")
    assert record[0].filename == __file__


def test_instrumented_classes_pickle_and_copy_like_plain_ones(lm, tmp_path) -> None:
    import copy

    import cloudpickle

    own = MemorySink(name="own")

    @streamll.instrument(stream_fields=["answer"], sinks=[own])
    class Local(QA):
        pass

    module = Local()
    module._streamll_stream_fields = ["answer"]
    clone = cloudpickle.loads(cloudpickle.dumps(module))
    assert clone(question="after pickling").answer
    assert copy.deepcopy(module).reset_copy()._streamll_stream_fields == ["answer"]
    assert [name for name, _ in module.named_predictors()] == ["predict"]
    module.save(str(tmp_path / "program"), save_program=True)
    import inspect

    options = {"allow_pickle": True} if "allow_pickle" in inspect.signature(dspy.load).parameters else {}
    loaded = dspy.load(str(tmp_path / "program"), **options)
    assert loaded(question="after loading").answer
    own.stop()


@pytest.mark.parametrize("fields", [[], ["answer"]], ids=["streams-nothing", "streams-answer"])
def test_an_async_call_answers_as_the_plain_module_does(
    fields: list[str], lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    import asyncio

    class AsyncQA(QA):
        async def aforward(self, question: str) -> dspy.Prediction:
            return await self.predict.acall(question=question)

    echo(server)
    plain = asyncio.run(AsyncQA().acall(question="plain"))
    instrumented = asyncio.run(
        streamll.instrument(stream_fields=fields)(type("Async", (AsyncQA,), {}))().acall(question="plain")
    )
    assert instrumented.answer == plain.answer == "The answer to plain is here."
    assert [bool(body.get("stream")) for body in server.requests] == [False, bool(fields)]
    assert streamll.flush(10)  # events reach the sink on the worker: wait for them
    assert "".join(token.token for token in memory_sink.tokens("answer")) == (plain.answer if fields else "")


@pytest.mark.parametrize("engine", ["native", "litellm"])
def test_a_failure_reading_the_stream_leaves_the_lm_call_as_it_is(
    engine: str, server: OfflineLMServer, memory_sink: MemorySink, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    from streamll.streaming.fields import LMCallStream

    def broken(self: LMCallStream, content: str) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(LMCallStream, "feed_text", broken)
    echo(server)
    lm = server.lm(engine="litellm") if engine == "litellm" else server.lm()
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()), caplog.at_level(logging.ERROR, logger="streamll"):
        prediction = StreamedQA()(question="still answered")
    assert prediction.answer == "The answer to still answered is here."
    assert len(server.requests) == 1, "no retry: the LM call itself succeeded"
    failures = [r for r in caplog.records if r.getMessage() == "streamll: failed to process a stream chunk"]
    assert failures and all(r.exc_info and str(r.exc_info[1]) == "parser bug" for r in failures)
    assert [close.event_type for _, close in lm_spans(memory_sink)] == ["end"]


def test_plain_programs_run_dspys_own_methods_between_instrumented_calls(lm, server: OfflineLMServer) -> None:
    StreamedQA()(question="instrumented first")
    server.configure(fail_status=500)
    with pytest.raises(Exception) as info:
        QA()(question="plain afterwards")
    frames = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    assert not [name for name in frames if "/streamll/" in name]


def test_an_lm_error_through_an_instrumented_call_has_the_plain_traceback(lm, server: OfflineLMServer) -> None:
    server.configure(fail_status=500)
    caught = []
    for cls in (QA, StreamedQA):
        with pytest.raises(Exception) as info:
            cls()(question="server down")
        caught.append(info.value)
    plain, instrumented = (traceback.extract_tb(exc.__traceback__) for exc in caught)
    ours = [frame for frame in instrumented if "/streamll/" in frame.filename]
    assert [frame.name for frame in ours] == ["__call__", "call_sync"]
    assert [(f.filename, f.name) for f in instrumented if f not in ours][1:] == [(f.filename, f.name) for f in plain][
        1:
    ]
    assert type(caught[0]) is type(caught[1]) and str(caught[0]) == str(caught[1])


def test_wrappers_are_not_dropped_while_an_instrumented_call_runs(lm) -> None:
    from streamll.streaming import patches

    @streamll.instrument(stream_fields=["answer"])
    class Forgetful(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            self.dropped = patches.forget()  # the call is running: its wrappers stay in place
            return self.qa(question=question)

    program = Forgetful()
    assert program(question="q").answer and program.dropped is False
    assert patches.forget() is True  # nothing running: the next call builds them again
    assert program(question="again").answer


def streaming_frames(exc: BaseException) -> list[str]:
    return [f.name for f in traceback.extract_tb(exc.__traceback__) if "/streamll/streaming/" in f.filename]


def test_every_exception_a_users_error_chains_has_the_plain_traceback(lm, server: OfflineLMServer) -> None:
    """The LM error the user's code caught is the cause; an unrelated error it handled since is the context."""

    class Chained(QA):
        def forward(self, question: str) -> dspy.Prediction:
            try:
                self.predict(question=question)
            except Exception as lm_error:
                failure = lm_error
            try:
                raise ValueError("the fallback failed too")
            except ValueError:
                raise Boom("no answer") from failure

    server.configure(fail_status=500)
    with pytest.raises(Boom) as info:
        streamll.instrument(stream_fields=["answer"])(type("InstrumentedChained", (Chained,), {}))()(question="q")
    lm_error, fallback = info.value.__cause__, info.value.__context__
    assert isinstance(fallback, ValueError) and lm_error is not None and lm_error is not fallback
    assert streaming_frames(info.value) == streaming_frames(fallback) == streaming_frames(lm_error) == []


def test_an_error_whose_causes_form_a_cycle_is_raised_as_it_is(lm) -> None:
    class Circular(QA):
        def forward(self, question: str) -> dspy.Prediction:
            first = Boom("first")
            try:
                raise ValueError("second") from first
            except ValueError as second:
                raise first from second

    with pytest.raises(Boom) as info:
        streamll.instrument(stream_fields=["answer"])(type("InstrumentedCircular", (Circular,), {}))()(question="q")
    assert info.value.__cause__.__cause__ is info.value
    assert streaming_frames(info.value) == []


def test_instrumented_sub_modules_in_dspy_parallel_belong_to_the_callers_execution(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    @streamll.instrument
    class Fanout(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qa = StreamedQA()

        def forward(self, questions: list[str]) -> list[Any]:
            parallel = dspy.Parallel(num_threads=2, disable_progress_bar=True)
            return parallel([(self.qa, {"question": q}) for q in questions])

    echo(server)
    results = Fanout()(questions=["f-1", "f-2"])
    assert streamll.flush(10)

    starts = [e for e in memory_sink.of_type("start") if e.operation == "module"]
    outer = next(e for e in starts if e.module_name == "Fanout")
    inner = [e for e in starts if e is not outer]
    assert len(inner) == 2 and all(e.parent_id == outer.event_id for e in inner)
    assert _executions(memory_sink) == {outer.execution_id}
    assert [r.answer for r in results] == ["The answer to f-1 is here.", "The answer to f-2 is here."]
