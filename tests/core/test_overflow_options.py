"""A sink's buffer options: one clear error per bad value, the overflow policies by name, the byte estimate."""

from __future__ import annotations

from typing import Any

import pytest
from streamll.core.events import Event, TokenEvent
from streamll.core.records import TokenLane, TokenRecord
from streamll.errors import ConfigurationError
from streamll.sinks.base import BaseSink
from streamll.sinks.overflow import EVENT_OVERHEAD, RECORD_OVERHEAD, Overflow, estimate
from streamll.sinks.results import BatchResult


class Quiet(BaseSink):
    """A destination that takes everything; only its options matter here."""

    async def write_batch(self, events: list[Any]) -> None:
        return None


@pytest.mark.parametrize("option", ["buffer_size", "buffer_bytes", "batch_size"])
@pytest.mark.parametrize("value", [0, -3, 2.5, "100", True])
def test_a_count_option_must_be_a_whole_number_of_one_or_more(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{option} must be a whole number >= 1, got {value!r}$"):
        Quiet(**{option: value})


@pytest.mark.parametrize("option", ["buffer_size", "buffer_bytes", "batch_size"])
def test_a_count_of_one_is_accepted(option: str) -> None:
    assert getattr(Quiet(**{option: 1}), option) == 1


@pytest.mark.parametrize("option", ["linger", "block_timeout"])
@pytest.mark.parametrize("value", [-0.5, float("nan"), "1", True])
def test_a_seconds_option_must_be_a_number_of_zero_or_more(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{option} must be a number of seconds >= 0, got {value!r}$"):
        Quiet(**{option: value})


@pytest.mark.parametrize("value", [0, 0.0, 1.5, 3])
def test_zero_and_positive_seconds_are_accepted(value: float) -> None:
    assert Quiet(linger=value, block_timeout=value).block_timeout == value


def test_the_defaults_are_the_documented_ones() -> None:
    sink = Quiet()  # docs/plugins.md lists them
    assert (sink.block_timeout, sink.linger, sink.overflow) == (1.0, 0.0, Overflow.DROP_OLDEST)


@pytest.mark.parametrize("policy", list(Overflow))
def test_every_overflow_policy_is_accepted_by_name(policy: Overflow) -> None:
    assert Quiet(overflow=policy.value).overflow is policy
    assert Quiet(overflow=policy).overflow is policy


def test_an_unknown_overflow_policy_names_the_choices() -> None:
    message = r"^unknown overflow policy 'sometimes'; choose one of drop_oldest, drop_newest, block, spill$"
    with pytest.raises(ConfigurationError, match=message):
        Quiet(overflow="sometimes")


def test_the_policy_names_are_what_urls_and_configs_spell() -> None:
    assert {policy.value for policy in Overflow} == {"drop_oldest", "drop_newest", "block", "spill"}
    assert Quiet().overflow is Overflow.DROP_OLDEST


def _custom(**data: Any) -> Event:
    return Event(event_type="custom", execution_id="e", data=data)


def test_the_byte_estimate_grows_with_the_event_data() -> None:
    assert estimate(_custom()) == EVENT_OVERHEAD
    assert estimate(_custom(text="x" * 100)) - estimate(_custom(text="x" * 10)) == 90
    assert estimate(_custom(a="", b="")) == EVENT_OVERHEAD + 2 * 16
    assert estimate(_custom(blob=b"12345")) == EVENT_OVERHEAD + 16 + 5
    assert estimate(_custom(n=12345)) == estimate(_custom(n=[1, 2])) == EVENT_OVERHEAD + 16 + 64


def test_the_byte_estimate_of_a_token_counts_its_text() -> None:
    token = TokenEvent(execution_id="e", token="abc", field="answer")
    assert estimate(token) == EVENT_OVERHEAD + len(token.data) * 16 + 3
    longer = TokenEvent(execution_id="e", token="abcdefgh", field="answer")
    assert estimate(longer) - estimate(token) == 5
    assert RECORD_OVERHEAD == EVENT_OVERHEAD + 6 * 16


def _record(token: str) -> TokenRecord:
    return TokenRecord(TokenLane("e" * 32, None, {"predictor": "QA.p"}, {}, "QA.p", "a"), 3, token, 2, None)


def test_the_byte_estimate_of_a_captured_token_counts_its_text() -> None:
    assert estimate(_record("abc")) == RECORD_OVERHEAD + 3
    assert estimate(_record("abcdefgh")) - estimate(_record("abc")) == 5


def test_the_byte_estimate_is_near_the_encoded_size() -> None:
    for item in (_custom(text="x" * 500), TokenEvent(execution_id="e", token="hello", field="answer")):
        actual = len(item.to_json())
        assert actual / 2 <= estimate(item) <= actual * 2, (estimate(item), actual)


def test_a_batch_result_lists_each_rejection() -> None:
    result = BatchResult.of(2, (reason for reason in ["too large", "bad key"]))
    assert result == BatchResult(2, ("too large", "bad key"))
    assert result.rejected == ("too large", "bad key") and result.delivered == 2
    assert BatchResult.of(3) == BatchResult(3) and BatchResult(3).rejected == ()
    with pytest.raises(AttributeError):
        result.delivered = 5  # type: ignore[misc]
