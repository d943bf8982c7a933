"""A streamll 0.1.1 consumer: run with 0.1.1 first on PYTHONPATH.

Registers 0.1.1 EventConsumer handlers for the usual event types and
prints every event received as ``EVENT <json>`` until ``EXPECTED`` events
of type "finished" arrived (or a timeout).

Usage: consumer.py REDIS_URL STREAM_KEY EXPECTED_FINISHED
"""

import asyncio
import json
import sys

import streamll
from streamll.event_consumer import EventConsumer
from streamll.models import Event

TYPES = ("start", "token", "end", "error", "llm_start", "llm_end", "docs_found", "finished")


async def main():
    url, stream, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    assert streamll.__version__.startswith("0.1"), streamll.__file__
    consumer = EventConsumer(url, target=stream)
    finished = []
    done = asyncio.Event()

    def register(kind):
        @consumer.on(kind)
        async def handle(event: Event):
            print("EVENT " + json.dumps(event.model_dump(mode="json")), flush=True)
            if kind == "finished":
                finished.append(event)
                if len(finished) >= expected:
                    done.set()

    for kind in TYPES:
        register(kind)
    await consumer.start()
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await consumer.stop()


asyncio.run(main())
