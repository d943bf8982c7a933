"""The DSPy streaming bridge: field parsers and the stream channel."""
