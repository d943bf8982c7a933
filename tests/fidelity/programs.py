"""Programs of the corpus: each ``build(decorate)`` defines a fresh ``dspy.Module`` class.

Every builder defines its class inside the function, so the plain run and each
instrumented run get their own class (the decorator changes the class it is given).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import tempfile
import traceback
from collections.abc import Callable
from typing import Any, Literal

import dspy
import pydantic

from .harness import QUESTION, Decorate, Known, StreamedRun

QUESTIONS = ("What is machine learning?", "What is a neural network?", "What is a gradient?")


def echo_answer(request: Any) -> dict[str, Any]:
    """A reply that depends on the question, so results of concurrent calls can't be swapped unseen."""
    return {"answer": f"Answer to: {request.inputs.get('question', '?')}"}


def examples() -> list[dspy.Example]:
    return [dspy.Example(question=q, answer=f"Answer to: {q}").with_inputs("question") for q in QUESTIONS]


def wrapping(factory: Callable[[], Any]) -> Callable[[Decorate], Any]:
    """A user module whose ``forward`` calls one DSPy module built by ``factory``."""

    def build(decorate: Decorate) -> Any:
        class Program(dspy.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = factory()

            def forward(self, **kwargs: Any) -> Any:
                return self.inner(**kwargs)

        return decorate(Program)()

    return build


def predict() -> Any:
    return dspy.Predict("question -> answer")


def cot() -> Any:
    return dspy.ChainOfThought("question -> answer")


def nested(decorate: Decorate) -> Any:
    """An instrumented module calling another instrumented module (both decorated)."""

    class Inner(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> Any:
            return self.cot(question=question)

    inner_class = decorate(Inner)

    class Outer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = inner_class()
            self.second = dspy.Predict("question, draft -> answer")

        def forward(self, question: str) -> Any:
            draft = self.first(question=question)
            return self.second(question=question, draft=draft.answer)

    return decorate(Outer)()


# ------------------------------------------------------------------ tools and agents


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def lookup(term: str) -> str:
    """Look a term up (always fails: the agent sees the error as an observation)."""
    raise KeyError(f"no entry for {term}")


def react_responder(request: Any) -> dict[str, Any]:
    """Call ``add``, then the failing ``lookup``, then finish."""
    if "next_tool_name" not in request.output_fields:
        return {}
    step = _steps(request)
    plan = [("add", {"a": 2, "b": 3}), ("lookup", {"term": "gradient"}), ("finish", {})]
    name, args = plan[min(step, 2)]
    return {"next_thought": f"Step {step}: use {name}.", "next_tool_name": name, "next_tool_args": args}


def _steps(request: Any) -> int:
    """How many tool observations the trajectory in the prompt already holds."""
    text = request.user_text
    return sum(1 for i in range(10) if f"observation_{i}" in text)


def react() -> Any:
    return dspy.ReAct("question -> answer", tools=[add, lookup], max_iters=4)


def async_react(decorate: Decorate) -> Any:
    """ReAct through ``acall``: its tools run through ``Tool.acall``."""

    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.agent = react()

        async def aforward(self, question: str) -> Any:
            return await self.agent.acall(question=question)

    return decorate(Program)()


class PickTools(dspy.Signature):
    """Choose the tools that answer the question."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    tool_calls: dspy.ToolCalls = dspy.OutputField()


def native_tools_responder(request: Any) -> dict[str, Any]:
    """Two native tool calls: ``add`` and ``lookup`` (which raises when executed)."""
    calls = [{"name": "add", "arguments": {"a": 2, "b": 3}}, {"name": "lookup", "arguments": {"term": "x"}}]
    return {"tool_calls": calls}


def native_tools(lookup_in_caller: bool) -> Callable[[Decorate], Any]:
    """Native function calling: the LM returns tool calls, ``ToolCall.execute`` runs them.

    A failing tool's exception is caught and kept as text, as an agent loop does;
    with ``lookup_in_caller`` the calls find their functions in the caller's frame
    (``execute()`` without ``functions``).
    """

    def build(decorate: Decorate) -> Any:
        class Program(dspy.Module):
            def __init__(self) -> None:
                super().__init__()
                self.pick = dspy.Predict(PickTools)

            def forward(self, question: str) -> Any:
                tools = [dspy.Tool(add), dspy.Tool(lookup)]
                prediction = self.pick(question=question, tools=tools)
                results: list[Any] = []
                for call in prediction.tool_calls.tool_calls:
                    try:
                        results.append(call.execute() if lookup_in_caller else call.execute(functions=tools))
                    except Exception as exc:
                        results.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
                return [prediction, results]

        return decorate(Program)()

    return build


def direct_tool_error(decorate: Decorate) -> Any:
    """A ``dspy.Tool`` called by the program itself, raising through to the caller."""

    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")
            self.lookup = dspy.Tool(lookup)

        def forward(self, question: str) -> Any:
            answer = self.predict(question=question).answer
            return self.lookup(term=answer)

    return decorate(Program)()


# ------------------------------------------------------------------ program of thought


def pot_responder(request: Any) -> dict[str, Any]:
    if "generated_code" in request.output_fields:
        return {"generated_code": "```python\nresult = 6 * 7\nresult\n```"}
    return {}


def has_local_interpreter() -> str | None:
    if hasattr(dspy, "LocalInterpreter"):
        return None
    return f"dspy {dspy.__version__} has no LocalInterpreter; its ProgramOfThought runs code only in Deno"


def program_of_thought() -> Any:
    return dspy.ProgramOfThought("question -> answer", max_iters=2, interpreter_factory=dspy.LocalInterpreter)


# ------------------------------------------------------------------ refine, best of n


def refine() -> Any:
    return dspy.Refine(module=dspy.ChainOfThought("question -> answer"), N=2, reward_fn=lambda a, p: 0.0, threshold=1.0)


def best_of_n() -> Any:
    return dspy.BestOfN(module=dspy.Predict("question -> answer"), N=3, reward_fn=lambda a, p: 0.0, threshold=1.0)


def scored(*values: float) -> Callable[[Any, Any], float]:
    """A reward function giving successive attempts these scores (a fresh one per program built)."""
    pending = list(values)
    return lambda args, prediction: pending.pop(0) if pending else 0.0


def refine_attempts() -> Any:
    """Three attempts, the second one best: Refine asks for feedback between them and returns the second."""
    return dspy.Refine(dspy.ChainOfThought("question -> answer"), N=3, reward_fn=scored(0.2, 0.9, 0.5), threshold=1.0)


def best_of_n_attempts() -> Any:
    return dspy.BestOfN(dspy.Predict("question -> answer"), N=3, reward_fn=scored(0.1, 0.7, 0.3), threshold=1.0)


def attempts_check(count: int) -> Callable[[Any], None]:
    """The plain run made ``count`` attempts (its LM requests for ``answer``)."""

    def check(outcome: Any) -> None:
        assert outcome.exception is None, outcome.exception
        answers = [body for body in outcome.requests if "answer" in json.dumps(body.get("messages", ""))]
        assert len(answers) >= count, f"{len(answers)} attempts"

    return check


# ------------------------------------------------------------------ stages, reasoning models


def two_answers(request: Any) -> dict[str, Any]:
    """The draft stage and the respond stage answer differently."""
    return {"answer": "Final answer." if "draft" in request.inputs else "Draft answer."}


def two_stage(decorate: Decorate) -> Any:
    class TwoStage(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.ChainOfThought("question -> answer")
            self.respond = dspy.Predict("question, draft -> answer")

        def forward(self, question: str) -> Any:
            draft = self.draft(question=question)
            return self.respond(question=question, draft=draft.answer)

    return decorate(TwoStage)()


REASONING_CONTENT = "The user asks for a definition. One sentence is enough."


def has_engines() -> str | None:
    """dspy >= 3.4 chooses an engine (before, every call goes through LiteLLM, as the default case covers)."""
    if importlib.util.find_spec("dspy.clients.engines") is None:
        return f"dspy {dspy.__version__} has no engine= (every LM call uses LiteLLM)"
    return None


NATIVE_CUT_MESSAGE = Known(
    ("fields",),
    "dspy >= 3.4's native engine words a cut reply by its framing in the top-level message: "
    "'connection closed mid-chunk' streamed, 'connection closed with N body bytes outstanding' plain",
    applies=lambda: has_engines() is None,
)
"""The same type (LMTransportError) either way; only the message differs."""


def has_reasoning_type() -> str | None:
    return None if hasattr(dspy, "Reasoning") else f"dspy {dspy.__version__} has no dspy.Reasoning"


def reasoning_typed() -> Any:
    signature = dspy.Signature("question -> answer").prepend("reasoning", dspy.OutputField(), type_=dspy.Reasoning)
    return dspy.Predict(signature)


# ------------------------------------------------------------------ threads


def parallel(decorate: Decorate) -> Any:
    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")
            self.parallel = dspy.Parallel(num_threads=2, disable_progress_bar=True)

        def forward(self, questions: tuple[str, ...]) -> Any:
            return self.parallel([(self.predict, {"question": q}) for q in questions])

    return decorate(Program)()


def run_parallel(program: Any) -> Any:
    return program(questions=QUESTIONS)


def run_batch(program: Any) -> Any:
    return program.batch(examples(), num_threads=2, disable_progress_bar=True)


def run_evaluate(program: Any) -> Any:
    def metric(example: Any, prediction: Any, trace: Any = None) -> float:
        return float(example.answer == prediction.answer)

    evaluate = dspy.Evaluate(devset=examples(), metric=metric, num_threads=2, display_progress=False)
    return evaluate(program)


# ------------------------------------------------------------------ typed outputs


class Info(pydantic.BaseModel):
    name: str
    score: float


class TypedAnswer(dspy.Signature):
    """Answer with typed fields."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    count: int = dspy.OutputField()
    ok: bool = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    kind: Literal["fact", "opinion"] = dspy.OutputField()
    info: Info = dspy.OutputField()


def typed() -> Any:
    return dspy.Predict(TypedAnswer)


def fallback_responder(request: Any) -> dict[str, Any]:
    """A ChatAdapter reply whose int field does not parse; the JSONAdapter retry gets a valid one."""
    return {"count": "many"} if request.adapter == "chat" else {}


def counted() -> Any:
    return dspy.Predict("question -> answer, count: int")


def run_tracking_usage(program: Any) -> Any:
    with dspy.context(track_usage=True):
        prediction = program(question=QUESTION)
    return [prediction, prediction.get_lm_usage()]


# ------------------------------------------------------------------ async


def run_acall(program: Any) -> Any:
    return asyncio.run(program.acall(question=QUESTION))


def run_acall_gather(program: Any) -> Any:
    """Concurrent ``acall``s on one instance, as a server handling several requests does."""

    async def main() -> Any:
        return await asyncio.gather(*(program.acall(question=q) for q in QUESTIONS))

    return asyncio.run(main())


def async_predict(decorate: Decorate) -> Any:
    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        async def aforward(self, question: str) -> Any:
            return await self.predict.acall(question=question)

    return decorate(Program)()


def async_cot(decorate: Decorate) -> Any:
    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        async def aforward(self, question: str) -> Any:
            return await self.cot.acall(question=question)

        def forward(self, question: str) -> Any:
            return self.cot(question=question)

    return decorate(Program)()


# ------------------------------------------------------------------ streamify


def streamify_runner(*, async_streaming: bool, statuses: bool = False) -> Callable[[Any], Any]:
    """Run under ``dspy.streamify``; with ``statuses`` its ``StatusMessage``s are kept beside the responses."""

    def run(program: Any) -> StreamedRun:
        callbacks = dspy.settings.callbacks
        before = list(callbacks)  # dspy 3.0's streamify() appends its status callback to the global list
        listeners = [dspy.streaming.StreamListener(signature_field_name="answer")]
        stream = dspy.streamify(program, stream_listeners=listeners, async_streaming=async_streaming)
        responses: list[Any] = []
        final: Any = None

        def take(item: Any) -> None:
            nonlocal final
            if isinstance(item, dspy.Prediction):
                final = item
            elif isinstance(item, dspy.streaming.StreamResponse) or (
                statuses and isinstance(item, dspy.streaming.StatusMessage)
            ):
                responses.append(item)

        try:
            if async_streaming:

                async def main() -> None:
                    async for item in stream(question=QUESTION):
                        take(item)

                asyncio.run(main())
            else:
                for item in stream(question=QUESTION):
                    take(item)
        finally:  # ... and leaves it there: later programs would run DSPy's callback path
            callbacks[:] = before
        return StreamedRun(responses, final)

    return run


# ------------------------------------------------------------------ user exceptions


def raising(kind: str) -> Callable[[Decorate], Any]:
    """A module that calls the LM, then raises: chained implicitly (context) or explicitly (cause)."""

    def build(decorate: Decorate) -> Any:
        class Program(dspy.Module):
            def __init__(self) -> None:
                super().__init__()
                self.predict = dspy.Predict("question -> answer")

            def forward(self, question: str) -> Any:
                prediction = self.predict(question=question)
                try:
                    {}["missing"]
                except KeyError as exc:
                    if kind == "cause":
                        raise RuntimeError(f"could not use {prediction.answer!r}") from exc
                    raise ValueError(f"bad answer {prediction.answer!r}")  # noqa: B904 (the implicit chain is the point)
                return prediction

        return decorate(Program)()

    return build


# ------------------------------------------------------------------ compiled programs


def compiled(*, whole_program: bool) -> Callable[[Decorate], Any]:
    """Compile with BootstrapFewShot (LM calls on the trainset), save, load, return the loaded program."""

    def build(decorate: Decorate) -> Any:
        student = wrapping(cot)(decorate)
        optimizer = dspy.BootstrapFewShot(
            metric=lambda e, p, t=None: True, max_bootstrapped_demos=1, max_labeled_demos=1
        )
        program = optimizer.compile(student, trainset=examples()[:2])
        with tempfile.TemporaryDirectory(prefix="streamll-fidelity-save-") as folder:
            if whole_program:
                program.save(folder, save_program=True)
                return _load_program(folder)
            path = os.path.join(folder, "program.json")
            program.save(path)
            fresh = wrapping(cot)(decorate)
            fresh.load(path)
            return fresh

    return build


def _load_program(folder: str) -> Any:
    if "allow_pickle" in inspect.signature(dspy.load).parameters:  # DSPy 3.4 asks for consent to unpickle
        return dspy.load(folder, allow_pickle=True)
    return dspy.load(folder)
