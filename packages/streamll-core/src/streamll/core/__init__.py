"""Event models, context and the emit path."""
