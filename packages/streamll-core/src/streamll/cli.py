"""The ``streamll`` command: ``demo``, ``plugins``, ``tail``, ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import Any

import click

from streamll import __version__

DEBUG_KEY = "streamll.debug"
URL_KEY = "streamll.url"


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[DEBUG_KEY] = True


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Show the full traceback when the command fails.",
)


class _Commands(click.Group):
    """Every command's failure is one line (what, where, what to do); ``--debug`` shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get(DEBUG_KEY) or os.environ.get("STREAMLL_DEBUG", "").lower() in ("1", "true", "yes"):
                raise
            from streamll.cli_errors import describe

            click.echo(describe(exc, ctx.invoked_subcommand or "", ctx.meta.get(URL_KEY)), err=True)
            ctx.exit(1)


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="streamll")
@debug_option
def main() -> None:
    """Watch a DSPy program think: stream tokens and lifecycle events to your infrastructure."""


@main.command()
@click.option("--question", default="What is machine learning?", show_default=True, help="What to ask.")
@click.option("--model", default=None, help="A real provider model (e.g. openai/gpt-4o-mini); needs its API key.")
@click.option(
    "--offline", is_flag=True, help="Use the offline server's canned answer even when the local model is installed."
)
@click.option(
    "--adapter",
    type=click.Choice(["chat", "json", "xml"]),
    default="chat",
    show_default=True,
    help="DSPy adapter (reply format) to use.",
)
@click.option("--sink", "sinks", multiple=True, help="Sink URL (repeatable); default: the terminal.")
@click.option("--token-delay", default=0.03, show_default=True, help="Offline server: seconds between tokens.")
@click.option(
    "--flush-timeout", default=10.0, show_default=True, help="Seconds to wait for the sinks to deliver at the end."
)
def demo(
    question: str,
    model: str | None,
    offline: bool,
    adapter: str,
    sinks: tuple[str, ...],
    token_delay: float,
    flush_timeout: float,
) -> None:
    """Stream a ChainOfThought answer token by token.

    The model is, in order: --model (a real provider), the local SmolLM2 model when
    streamll[local-model] is installed, else the offline server's canned answer.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy

    import streamll

    adapters: dict[str, Any] = {"chat": dspy.ChatAdapter, "json": dspy.JSONAdapter, "xml": dspy.XMLAdapter}

    @streamll.instrument(stream_fields=["reasoning", "answer"])
    class ReasoningQA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.cot(question=question)

    if sinks:
        streamll.configure(sinks=list(sinks))
    with contextlib.ExitStack() as stack:
        lm, canned = _demo_lm(stack, model, offline, token_delay)
        with dspy.context(lm=lm, adapter=adapters[adapter]()):
            prediction = ReasoningQA()(question=question)
        delivered = streamll.flush(timeout=flush_timeout)
    label = "answer (canned)" if canned else "answer"
    click.echo(f"\n{label}: {prediction.answer}", err=True)
    if not delivered:
        raise click.ClickException(_undelivered(streamll.stats(), flush_timeout))


def _undelivered(stats: dict[str, Any], timeout: float) -> str:
    """One line naming each sink that still holds events, and why (its last error)."""
    held = [
        f"{stats_.queued} on {name} ({stats_.last_error or 'still writing'})"
        for name, stats_ in stats.items()
        if stats_.queued
    ]
    return f"events not delivered within {timeout:g} s: {'; '.join(held) or 'a sink is still writing'}"


def _demo_lm(stack: contextlib.ExitStack, model: str | None, offline: bool, token_delay: float) -> tuple[Any, bool]:
    """The demo's LM and whether its answer is canned; says on stderr which model answers."""
    import dspy

    from streamll.testing import local_model

    if model is not None:
        click.echo(f"model: {model}", err=True)
        return dspy.LM(model, cache=False), False
    reason = "--offline was given"
    if not offline:
        try:
            server = stack.enter_context(local_model.LocalModelServer())
        except local_model.LocalModelUnavailable as exc:
            reason = str(exc)
        else:
            click.echo(
                f"model: SmolLM2-135M-Instruct, local (llama.cpp server on {server.base_url}); "
                "a 135M model gives short, simple answers",
                err=True,
            )
            return server.lm(), False
    from streamll.testing import OfflineLMServer

    offline_server = stack.enter_context(OfflineLMServer(token_delay=token_delay))
    click.echo(
        f"model: none, the answer is canned (the same for any question), streamed by the offline server on "
        f"{offline_server.api_base}; {reason}. For a real answer: --model PROVIDER/MODEL with its API key",
        err=True,
    )
    return offline_server.lm(), True


@main.command()
def plugins() -> None:
    """List discovered plugins, their URL schemes and load errors."""
    from streamll.plugins import list_plugins

    failed = False
    for info in list_plugins():
        version = f" {info.version}" if info.version else ""
        click.echo(f"{info.name}{version}  ({info.module})")
        if info.sink_schemes:
            click.echo(f"    sinks:     {', '.join(sorted(info.sink_schemes))}")
        if info.consumer_schemes:
            click.echo(f"    consumers: {', '.join(sorted(info.consumer_schemes))}")
        if info.error:
            failed = True
            click.echo(f"    ERROR: {info.error}")
    if failed:
        sys.exit(1)


@main.command()
@debug_option
@click.argument("url")
@click.option("--from-beginning", is_flag=True, help="Read the destination from its start.")
@click.option("--group", default=None, help="Consumer group / durable name (acks every event).")
@click.option("--type", "event_types", multiple=True, help="Only these event types (repeatable).")
@click.option("--execution", "execution_id", default=None, help="Only this execution_id.")
@click.option("--count", type=int, default=None, help="Stop after this many events.")
@click.option("--json", "as_json", is_flag=True, help="Print the wire JSON instead of readable lines.")
@click.option("--live", is_flag=True, help="Show each execution's fields growing in place (needs rich).")
def tail(
    url: str,
    from_beginning: bool,
    group: str | None,
    event_types: tuple[str, ...],
    execution_id: str | None,
    count: int | None,
    as_json: bool,
    live: bool,
) -> None:
    """Print events read from a transport URL (redis://, nats://, kafka://, ...)."""
    if live and as_json:
        raise click.UsageError("--live and --json do not go together: choose one view")
    if live:
        try:
            from streamll.live_view import tail_live
        except ImportError:
            raise click.ClickException("--live needs rich: pip install 'streamll-core[web]'") from None
    from streamll.consumer import from_url
    from streamll.sinks.terminal import format_event, printable

    context = click.get_current_context()
    context.meta[URL_KEY] = url
    if not context.meta.get(DEBUG_KEY):
        # client libraries log their own connection errors; the command prints one line of its own
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    options: dict[str, Any] = {"from_beginning": from_beginning, "group": group}
    if event_types:
        options["event_types"] = list(event_types)
    if execution_id:
        options["execution_id"] = execution_id

    async def run() -> None:
        seen = 0
        async with from_url(url, **{k: v for k, v in options.items() if v is not None}) as consumer:
            if live:
                await tail_live(consumer, count=count, group=bool(group))
                return
            async for event in consumer:
                click.echo(printable(event.to_json().decode()) if as_json else format_event(event))
                if group:
                    await consumer.ack(event)
                seen += 1
                if count is not None and seen >= count:
                    return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@main.command()
@click.argument("source")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--secret-env", default=None, help="Name of an environment variable holding the token secret.")
@click.option("--heartbeat", default=15.0, show_default=True, help="Seconds between heartbeats on an idle stream.")
def serve(source: str, host: str, port: int, secret_env: str | None, heartbeat: float) -> None:
    """Serve executions read from SOURCE (the producer's sink URL) to browsers as SSE, with a live page at /."""
    try:
        import uvicorn

        from streamll.web import create_app
    except ImportError as exc:
        raise click.ClickException(f"{exc}; install the web extra: pip install 'streamll-core[web]'") from None
    secret = None
    if secret_env:
        secret = os.environ.get(secret_env)
        if not secret:
            raise click.ClickException(f"--secret-env {secret_env}: that environment variable is empty or unset")
    from streamll.errors import ConfigurationError

    try:
        app = create_app(source, secret=secret, heartbeat=heartbeat)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"streamll relay on http://{host}:{port}/ (live page), executions at /executions/ID/events", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
