"""LiteLLM capture: a cut stream fails as the plain call would; a streamed reply is always closed after reading."""

from __future__ import annotations

import logging

import httpx
import litellm
import pytest
from litellm.exceptions import MidStreamFallbackError
from streamll.streaming.litellm_errors import plain_failure


def cut_stream() -> Exception:
    """LiteLLM's own mid-stream error over the dropped connection (as its stream reader raises it)."""
    error = MidStreamFallbackError(message="stream cut", model="offline", llm_provider="openai")
    error.__context__ = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    return error


def test_a_cut_stream_of_a_known_provider_fails_as_the_plain_call_does() -> None:
    failure = plain_failure(cut_stream(), {"model": "openai/offline", "api_base": "http://127.0.0.1:9/v1"})
    assert isinstance(failure, litellm.InternalServerError)
    assert isinstance(failure.__context__.__context__, httpx.RemoteProtocolError)
    assert "peer closed connection" in str(failure)
    assert failure.__cause__ is None and failure.__traceback__ is None


@pytest.mark.parametrize(
    "provider",
    [{"custom_llm_provider": "openai"}, {"api_base": "https://api.groq.com/openai/v1"}],
    ids=["custom_llm_provider", "api_base"],
)
def test_a_cut_stream_names_its_provider_as_the_plain_call_does(provider: dict[str, str]) -> None:
    """A model name without a provider prefix: LiteLLM takes the provider from the request, and so does streamll."""
    error = cut_stream()
    failure = plain_failure(error, {"model": "offline", **provider})
    assert failure is not error and isinstance(failure, litellm.InternalServerError)
    assert isinstance(failure.__context__.__context__, httpx.RemoteProtocolError)


def test_a_cut_stream_litellm_cannot_map_is_raised_as_litellm_raised_it(caplog: pytest.LogCaptureFixture) -> None:
    error = cut_stream()
    with caplog.at_level(logging.DEBUG, logger="streamll"):
        assert plain_failure(error, {"model": "a-model-of-no-known-provider"}) is error
    (record,) = [record for record in caplog.records if record.name == "streamll"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "streamll: could not map a mid-stream LiteLLM error"
    assert record.exc_info is not None and isinstance(record.exc_info[1], litellm.BadRequestError)


class Reply:
    """A streamed LiteLLM reply: its chunks, read sync or async, and whether the reader closed it."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.chunks)

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def test_a_streamed_reply_is_closed_once_read_or_when_the_run_is_cancelled() -> None:
    import asyncio

    from streamll.core.runs import ExecutionCancelled
    from streamll.streaming.litellm_capture import _aread, _read

    read, aread = Reply(["a", "b"]), Reply(["a", "b"])
    assert _read(read, None, None) == ["a", "b"] and read.closed
    assert asyncio.run(_aread(aread, None, None)) == ["a", "b"] and aread.closed

    cut, acut = Reply(["a", "b"]), Reply(["a", "b"])
    with pytest.raises(ExecutionCancelled, match=r"^the execution was cancelled$"):
        _read(cut, None, lambda: True)
    with pytest.raises(ExecutionCancelled, match=r"^the execution was cancelled$"):
        asyncio.run(_aread(acut, None, lambda: True))
    assert cut.closed and acut.closed
