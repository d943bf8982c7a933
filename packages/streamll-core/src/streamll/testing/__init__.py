"""Test helpers that ship with streamll: offline and local model servers, the transport contract suite."""

from streamll.testing.lm_server import OfflineLMServer, tokenize
from streamll.testing.local_model import LocalModelServer, LocalModelUnavailable, local_model_available

__all__ = ["LocalModelServer", "LocalModelUnavailable", "OfflineLMServer", "local_model_available", "tokenize"]
