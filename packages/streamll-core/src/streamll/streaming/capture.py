"""Token capture below DSPy: the LM request streams, DSPy receives the assembled reply.

DSPy's own stream channel (``settings.send_stream``) changes how DSPy runs:
it stops retrying and stops the ChatAdapter -> JSONAdapter fallback once a
chunk has gone out, and its sync path needs an AnyIO worker thread. So
streamll never touches it. Instead, while a predictor with a chosen field
calls its LM, the request that DSPy would send as an ordinary call is sent as
a streaming one; each piece of text is parsed as it arrives, and DSPy gets
back exactly the value type the ordinary call returns:

* native engines (dspy >= 3.4, ``Engine.complete``): ``Engine.stream`` events
  assembled by lm15's ``StreamAccumulator``, as DSPy's own streaming path does;
* LiteLLM (``dspy.clients.lm.litellm_completion`` / ``alitellm_completion``,
  every DSPy 3 line): ``stream=True`` and ``litellm.stream_chunk_builder``.

Errors surface from the same call DSPy made, so its retry loop and adapter
fallback see them as before. When DSPy itself streams (a user's
``dspy.streamify``), streamll reads the same chunks without taking them.

The wrappers (:mod:`~streamll.streaming.engine_capture`,
:mod:`~streamll.streaming.litellm_capture`, sharing
:mod:`~streamll.streaming.capture_support`) are in place only while an
instrumented call runs (:mod:`~streamll.streaming.patches`) and do nothing
unless the current thread or task runs an LM call of an instrumented
predictor with a chosen field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from streamll.streaming.engine_capture import install_engines
from streamll.streaming.litellm_capture import wrap_litellm
from streamll.streaming.patches import activate, deactivate


def prepare() -> None:
    """Build every wrapper once (called by :func:`~streamll.streaming.patches.activate` under its lock)."""
    from dspy.clients import lm as lm_module

    from streamll.streaming.attempts import prepare_attempts
    from streamll.streaming.hooks import prepare_hooks

    prepare_hooks()
    prepare_attempts()
    install_engines()
    wrap_litellm(lm_module)


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """The wrappers are in place for the duration of one instrumented call."""
    activate(prepare)
    try:
        yield
    finally:
        deactivate()


__all__ = ["capturing", "prepare"]
