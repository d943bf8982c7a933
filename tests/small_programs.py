"""Small DSPy modules tests share: each call defines a fresh class (the decorator changes the class it is given)."""

from __future__ import annotations

import dspy
import streamll


def counted(stream_fields: list[str] | None = None) -> type[dspy.Module]:
    """A module answering ``question -> answer, count: int``; instrumented with ``stream_fields`` when given."""

    class Counted(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer, count: int")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    return Counted if stream_fields is None else streamll.instrument(stream_fields=stream_fields)(Counted)
