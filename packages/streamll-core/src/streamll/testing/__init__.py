"""Test helpers that ship with streamll: the offline LM server and the transport contract suite."""

from streamll.testing.lm_server import OfflineLMServer, tokenize

__all__ = ["OfflineLMServer", "tokenize"]
