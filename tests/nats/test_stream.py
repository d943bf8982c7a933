"""The sink creates its stream when missing and accepts an existing one as it is."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.js import JetStreamContext, api
from streamll.errors import ConfigurationError
from streamll.testing.contract import make_execution_events, write
from streamll_nats import NatsStreamConsumer

from tests.helpers import wait_until
from tests.nats.conftest import MakeSink

pytestmark = pytest.mark.nats


def wait_for_error(sink: Any, text: str, timeout: float = 10.0) -> str:
    """The sink's last_error once it contains ``text``."""
    wait_until(lambda: text in (sink.stats.last_error or ""), timeout, what=f"the sink to report {text!r}")
    return str(sink.stats.last_error)


async def test_missing_stream_is_created_with_the_url_settings(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = (
        f"{nats_url}?subject={subject}&stream={stream}&subjects={subject},{subject}.extra.>"
        "&retention=limits&storage=memory&max_age=1h&max_msgs=500&max_bytes=10485760&duplicate_window=45s"
    )
    sink = make_sink(url)
    _, events = make_execution_events(3)
    await asyncio.to_thread(write, sink, events)
    info = await js.stream_info(stream)
    config = info.config
    assert config.subjects == [subject, f"{subject}.extra.>"]
    assert config.retention == api.RetentionPolicy.LIMITS and config.storage == api.StorageType.MEMORY
    assert config.max_age == 3600.0 and config.max_msgs == 500 and config.max_bytes == 10485760
    assert config.duplicate_window == 45.0
    assert info.state.messages == len(events)
    await asyncio.to_thread(sink.stop)


async def test_default_stream_settings(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    await asyncio.to_thread(write, sink, make_execution_events(1)[1])
    config = (await js.stream_info(stream)).config
    assert config.subjects == [subject] and config.storage == api.StorageType.FILE
    assert config.duplicate_window == 120.0
    await asyncio.to_thread(sink.stop)


async def test_existing_stream_is_used_as_it_is(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    await js.add_stream(name=stream, subjects=[f"{subject}.>"], max_msgs=1000, storage=api.StorageType.MEMORY)
    sink = make_sink(f"{nats_url}?subject={subject}.tokens&stream={stream}&max_msgs=5&storage=file")
    _, events = make_execution_events(4)
    await asyncio.to_thread(write, sink, events)
    info = await js.stream_info(stream)
    assert info.config.subjects == [f"{subject}.>"] and info.config.max_msgs == 1000
    assert info.config.storage == api.StorageType.MEMORY
    assert info.state.messages == len(events)
    await asyncio.to_thread(sink.stop)


async def test_existing_stream_without_the_subject_is_a_clear_error(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    await js.add_stream(name=stream, subjects=[f"{subject}.other"])
    url = f"{nats_url}?subject={subject}&stream={stream}"
    sink = make_sink(url)
    sink.enqueue(make_execution_events(1)[1][0])
    error = await asyncio.to_thread(wait_for_error, sink, "do not include subject")
    assert stream in error and subject in error
    assert not await asyncio.to_thread(sink.stop, 0.5)
    assert sink.stats.dropped == 1 and sink.stats.delivered == 0
    with pytest.raises(ConfigurationError, match="do not include subject"):
        await NatsStreamConsumer(url).start()
    assert (await js.stream_info(stream)).config.subjects == [f"{subject}.other"]


async def test_subject_owned_by_another_stream_is_a_clear_error(
    nats_url: str, names: tuple[str, str], js: JetStreamContext
) -> None:
    subject, stream = names
    await js.add_stream(name=stream, subjects=[subject])
    other = f"{stream}_OTHER"
    with pytest.raises(ConfigurationError, match=f"already captured by stream '{stream}'"):
        await NatsStreamConsumer(f"{nats_url}?subject={subject}&stream={other}").start()


async def test_create_false_requires_an_existing_stream(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}&create=false"
    with pytest.raises(ConfigurationError, match="does not exist and create=false"):
        await NatsStreamConsumer(url).start()
    await js.add_stream(name=stream, subjects=[subject])
    sink = make_sink(url)
    await asyncio.to_thread(write, sink, make_execution_events(1)[1])
    await asyncio.to_thread(sink.stop)
