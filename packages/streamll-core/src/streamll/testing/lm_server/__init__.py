"""Offline OpenAI-compatible chat-completions server for exercising DSPy streaming.

``OfflineLMServer`` listens on 127.0.0.1 and answers ``POST /v1/chat/completions``
the way an OpenAI-compatible provider would: a ``chat.completion`` JSON body for
plain requests and a server-sent-event stream of ``chat.completion.chunk``
objects (HTTP/1.1 chunked transfer encoding) for ``stream: true`` requests.

Replies are formatted for the DSPy adapter that built the prompt (ChatAdapter,
JSONAdapter or XMLAdapter), so ``dspy.LM("openai/...", api_base=server.api_base)``
runs DSPy's real HTTP and streaming code paths without any network access.

Modules, one concern each: ``prompt`` (reading DSPy's prompts), ``values`` (synthesising
field values), ``reply`` (formatting replies per adapter), ``wire`` (OpenAI body shapes),
``tool_calls`` (native tool calls), ``handler`` (HTTP and SSE), ``state`` (knobs and records),
``server`` (``OfflineLMServer``).

Example::

    with OfflineLMServer(answers={"answer": "Paris is the capital of France."}) as server:
        with dspy.context(lm=server.lm()):
            prediction = dspy.Predict("question -> answer")(question="Capital of France?")
"""

from streamll.testing.lm_server.prompt import ChatRequest
from streamll.testing.lm_server.reply import format_reply, tokenize
from streamll.testing.lm_server.server import OfflineLMServer
from streamll.testing.lm_server.state import KNOB_DEFAULTS, Knobs, StreamRecord
from streamll.testing.lm_server.values import DEFAULT_ANSWERS, default_value
from streamll.testing.lm_server.wire import iter_sse_events

__all__ = [
    "DEFAULT_ANSWERS",
    "KNOB_DEFAULTS",
    "ChatRequest",
    "Knobs",
    "OfflineLMServer",
    "StreamRecord",
    "default_value",
    "format_reply",
    "iter_sse_events",
    "tokenize",
]
