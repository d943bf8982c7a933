"""A streamll 0.1.1 producer: run with 0.1.1 first on PYTHONPATH.

0.1.1 calls async sinks from sync code without awaiting them, so its
RedisSink never publishes through emit; this collects the events with a
0.1.1 duck sink and publishes each with 0.1.1's RedisSink.handle_event,
which is exactly what reaches Redis in 0.1.1's layout.

Usage: producer.py REDIS_URL STREAM_KEY LM_API_BASE
Prints one JSON line: {"answer": ..., "events": [...]}
"""

import asyncio
import json
import sys

import dspy
import streamll
from streamll.sinks import RedisSink


class Collect:
    def __init__(self):
        self.events = []
        self.is_running = False

    def start(self):
        self.is_running = True

    def stop(self):
        self.is_running = False

    def handle_event(self, event):
        self.events.append(event)


@streamll.instrument(stream_fields=["answer"])
class QA(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        return self.predict(question=question)


async def publish(url, stream, events):
    sink = RedisSink(redis_url=url, stream_key=stream)
    await sink.start()
    for event in events:
        await sink.handle_event(event)
    await sink.stop()


def main():
    url, stream, api_base = sys.argv[1:4]
    assert streamll.__version__.startswith("0.1"), streamll.__file__
    collect = Collect()
    streamll.configure(sinks=[collect], permanent=True)
    dspy.configure(lm=dspy.LM("openai/offline", api_base=api_base, api_key="x", cache=False, num_retries=0))
    streamll.set_context(conversation_id="conv_old")
    result = QA()(question="What is machine learning?")
    with streamll.trace("retrieval", source="docs") as ctx:
        ctx.emit("docs_found", data={"count": 2})
    asyncio.run(publish(url, stream, collect.events))
    print(json.dumps({"answer": result.answer, "events": [e.model_dump(mode="json") for e in collect.events]}))


main()
