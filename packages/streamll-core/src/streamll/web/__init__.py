"""The web relay: one execution's events to browsers as Server-Sent Events, resumable, from any replica.

``create_app(url)`` is a Starlette ASGI app (mountable in FastAPI) reading
executions from the broker the producer writes to; ``streamll serve URL`` runs
it with uvicorn. Needs the ``web`` extra: ``pip install 'streamll-core[web]'``.
"""

from __future__ import annotations

try:
    import sse_starlette  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"streamll.web needs the web extra ({exc.name} is missing): pip install 'streamll-core[web]'"
    ) from exc

from streamll.web.app import create_app
from streamll.web.tokens import ANY_EXECUTION, sign, verify

__all__ = ["ANY_EXECUTION", "create_app", "sign", "verify"]
