"""An instrumented DSPy program streaming to Kafka by configuration alone, read back by a consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import dspy
import pytest
import streamll
from streamll.consumer import from_url
from streamll.testing import OfflineLMServer
from streamll.testing.contract import read
from streamll_kafka import KafkaSink

pytestmark = pytest.mark.kafka

ANSWER = "Kafka keeps every token of one execution in one partition."


@streamll.instrument(stream_fields=["answer"])
class QA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


@pytest.fixture
def configured_lm(lm_server: OfflineLMServer) -> Iterator[Any]:
    lm_server.reset()
    lm_server.configure(answers={"answer": ANSWER})
    with dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
        yield
    lm_server.reset()


async def test_configure_with_a_kafka_url_streams_a_program_to_a_consumer(
    topic: str, url_for: Callable[..., str], configured_lm: Any
) -> None:
    url = url_for(topic)
    streamll.configure(sinks=[url])
    try:
        async with from_url(url, from_beginning=False, group=None) as consumer:
            prediction = await asyncio.to_thread(QA(), question="Where do the tokens go?")
            assert prediction.answer == ANSWER
            assert await asyncio.to_thread(streamll.flush, 20)
            (sink,) = [s for s in streamll.running_sinks() if isinstance(s, KafkaSink) and s.topic == topic]
            count = sink.stats.delivered
            events = await read(consumer, count)
    finally:
        await asyncio.to_thread(streamll.configure, None)
    assert sink.stats.dropped == 0
    tokens = [event for event in events if event.event_type == "token"]
    assert "".join(token.token for token in tokens) == ANSWER
    assert [token.token_index for token in tokens] == list(range(len(tokens)))
    assert events[0].event_type == "start" and events[-1].event_type == "end"
    assert len({event.execution_id for event in events}) == 1
    assert [event.sequence for event in events] == sorted(event.sequence for event in events)
