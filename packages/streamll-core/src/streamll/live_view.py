"""``streamll tail URL --live``: each execution's streamed fields growing in place in the terminal (rich).

The view keeps the most recent executions; per execution, one panel per
streamed field (reasoning and answer side by side), the status (running,
finished, error, cancelled) and the last lifecycle events.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from streamll.core.events import Event

MAX_EXECUTIONS = 4
TIMELINE_LENGTH = 4


@dataclass
class _Execution:
    execution_id: str
    fields: dict[str, str] = field(default_factory=dict)
    status: str = "running"
    timeline: deque[str] = field(default_factory=lambda: deque(maxlen=TIMELINE_LENGTH))
    last_sequence: int = -1


class LiveView:
    """What ``--live`` shows, updated one event at a time."""

    def __init__(self, max_executions: int = MAX_EXECUTIONS) -> None:
        """Keep at most ``max_executions`` executions on screen."""
        self.max_executions = max_executions
        self.executions: OrderedDict[str, _Execution] = OrderedDict()

    def update(self, event: Event) -> None:
        """Take one event into the view (repeats of an already seen sequence are ignored)."""
        run = self.executions.get(event.execution_id)
        if run is None:
            run = self.executions[event.execution_id] = _Execution(event.execution_id)
            while len(self.executions) > self.max_executions:
                self.executions.popitem(last=False)
        if event.sequence <= run.last_sequence:
            return
        run.last_sequence = event.sequence
        data: dict[str, Any] = event.data
        if event.event_type == "token":
            name = str(data.get("field") or "")
            run.fields[name] = run.fields.get(name, "") + str(data.get("token") or "")
            return
        what = " ".join(str(part) for part in (event.event_type, event.operation, event.module_name) if part)
        run.timeline.append(f"#{event.sequence} {what}")
        if event.event_type in ("end", "error") and event.parent_id is None:
            if event.event_type == "error":
                run.status = "error"
            else:
                run.status = "cancelled" if data.get("cancelled") else "finished"

    def render(self) -> RenderableType:
        """The whole view."""
        if not self.executions:
            return Text("waiting for events…", style="dim")
        return Group(*(self._render_one(run) for run in reversed(self.executions.values())))

    @staticmethod
    def _render_one(run: _Execution) -> RenderableType:
        style = {"running": "yellow", "finished": "green"}.get(run.status, "red")
        names = sorted(run.fields, key=lambda name: (name != "reasoning", name))
        panels = [Panel(Text(run.fields[name]), title=name, title_align="left", expand=True) for name in names]
        body: list[RenderableType] = [Columns(panels, equal=True, expand=True)] if panels else []
        body.append(Text("  ".join(run.timeline), style="dim"))
        title = Text.assemble((run.execution_id, "bold"), "  ", (run.status, style))
        return Panel(Group(*body), title=title, title_align="left")


async def tail_live(consumer: Any, *, count: int | None = None, group: bool = False) -> LiveView:
    """Read ``consumer`` into a :class:`LiveView` drawn in place until ``count`` events (or Ctrl-C)."""
    from rich.live import Live

    view = LiveView()
    seen = 0
    with Live(view.render(), refresh_per_second=12, transient=False) as live:
        async for event in consumer:
            view.update(event)
            live.update(view.render())
            if group:
                await consumer.ack(event)
            seen += 1
            if count is not None and seen >= count:
                break
    return view


__all__ = ["LiveView", "tail_live"]
