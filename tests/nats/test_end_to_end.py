"""streamll.configure(sinks=["nats://..."]) then emit / trace: the events arrive at a consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import streamll
from nats.js import JetStreamContext
from streamll.consumer import NatsStreamConsumer
from streamll.testing.contract import read
from streamll_nats import NatsSink

pytestmark = pytest.mark.nats


@pytest.fixture
def restore_configuration() -> Iterator[None]:
    yield
    streamll.configure(sinks=None)  # stops (drains) the sink built from the URL


async def test_configured_url_streams_emit_and_trace_events(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, restore_configuration: None
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    streamll.configure(sinks=[url])
    sinks = streamll.stats()
    assert any(name == f"nats:{stream}/{subject}" for name in sinks)

    async with NatsStreamConsumer(url=url, subject=subject, stream=stream) as consumer:
        custom = streamll.emit("retrieval", {"documents": 3}, module_name="Retriever")
        with streamll.trace("pipeline", data={"question": "why?"}) as span:
            hit = span.emit("cache_hit", {"key": "k1"})
        assert await asyncio.to_thread(streamll.flush, 10)
        received = await read(consumer, 4)

    assert [e.event_type for e in received] == ["retrieval", "start", "cache_hit", "end"]
    assert received[0].event_id == custom.event_id and received[0].data == {"documents": 3}
    assert received[2].event_id == hit.event_id and received[2].parent_id == received[1].event_id
    assert received[1].execution_id == received[2].execution_id == received[3].execution_id
    assert received[1].module_name == "pipeline" and received[1].data == {"question": "why?"}
    ours = [s for s in streamll.running_sinks() if isinstance(s, NatsSink) and s.name == f"nats:{stream}/{subject}"]
    assert len(ours) == 1, streamll.running_sinks()
    assert ours[0].stats.delivered == 4 and ours[0].stats.dropped == 0


async def test_streamll_sinks_environment_variable(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    monkeypatch.setenv("STREAMLL_SINKS", url)
    streamll.configure(sinks=None)
    async with NatsStreamConsumer(url) as consumer:
        event = streamll.emit("from_env", {"ok": True})
        assert await asyncio.to_thread(streamll.flush, 10)
        received = await read(consumer, 1)
    assert received[0].event_id == event.event_id
    ours = [s for s in streamll.running_sinks() if isinstance(s, NatsSink) and s.stream == stream]
    assert len(ours) == 1 and ours[0].stats.delivered == 1, streamll.running_sinks()
    await asyncio.to_thread(ours[0].stop, 5)
