"""The live page in real headless Chromium (Playwright): exact final text, and a relay restart mid-stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from streamll.testing import OfflineLMServer
from streamll_redis import RedisSink

from tests.web.support import Producer, RelayProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def sink(redis_source: str) -> Iterator[RedisSink]:
    sink = RedisSink(redis_source)
    yield sink
    sink.stop(timeout=5)


def field_text(page: Any, execution_id: str, name: str) -> str:
    locator = page.locator(f'[data-execution="{execution_id}"] [data-field="{name}"] .text')
    return locator.inner_text() if locator.count() else ""


def test_the_page_shows_the_exact_final_text_and_survives_a_relay_restart(
    redis_source: str,
    sink: RedisSink,
    slow_lm_server: OfflineLMServer,
    slow_lm: Any,
    relays: Callable[..., RelayProcess],
    browser: Any,
) -> None:
    slow_lm_server.token_delay = 0.08  # about five seconds of streaming: the restart lands mid-stream
    relay = relays(redis_source)
    page = browser.new_page()
    page.goto(relay.base + "/")
    producer = Producer(sink, slow_lm).start()
    card = f'[data-execution="{producer.execution_id}"]'
    page.wait_for_selector(f'{card} [data-field="reasoning"]', timeout=30_000)
    page.wait_for_function(
        "sel => (document.querySelector(sel)?.textContent || '').length > 20",
        arg=f'{card} [data-field="reasoning"] .text',
        timeout=30_000,
    )
    assert page.locator(f'{card} [data-role="status"]').inner_text() == "running"

    relay.stop()  # the relay dies mid-stream and comes back on the same port
    page.wait_for_function("() => document.getElementById('connection').textContent !== 'live'", timeout=30_000)
    relays(redis_source, port=relay.port)

    prediction = producer.join()
    page.wait_for_selector(f"{card} .status.finished", timeout=60_000)
    assert field_text(page, producer.execution_id, "reasoning") == prediction.reasoning
    assert field_text(page, producer.execution_id, "answer") == prediction.answer
    timeline = page.locator(f'{card} [data-role="timeline"] li').all_inner_texts()
    assert timeline[0].startswith("#0 start execution") and timeline[-1].split()[1] == "end"
    assert any("start lm" in item for item in timeline) and any("end lm" in item for item in timeline)
    page.close()
