"""aiokafka keyword arguments from :class:`~streamll_kafka.url.KafkaOptions`.

One place turns the parsed options into what ``AIOKafkaProducer`` and
``AIOKafkaConsumer`` take, so the sink and the consumer connect the same way
(brokers, client id, TLS context, SASL credentials).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, Protocol

from streamll.errors import ConfigurationError

from streamll_kafka.url import KafkaOptions

logger = logging.getLogger("streamll.kafka")


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


def ssl_context(options: KafkaOptions) -> ssl.SSLContext | None:
    """A client TLS context (CA, client certificate and key from the options), or None without TLS."""
    if not options.uses_ssl:
        return None
    try:
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=options.ssl_cafile)
        if options.ssl_certfile:
            context.load_cert_chain(options.ssl_certfile, options.ssl_keyfile, password=options.ssl_password)
    except (ssl.SSLError, OSError) as exc:
        # The message names files and OpenSSL's reason, never the key password.
        raise ConfigurationError(f"kafka TLS setup failed: {type(exc).__name__}: {exc}") from None
    context.check_hostname = options.ssl_check_hostname
    return context


def common_kwargs(options: KafkaOptions) -> dict[str, Any]:
    """Connection and security settings shared by producers, consumers and admin clients."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(options.bootstrap_servers),
        "client_id": options.client_id,
        "request_timeout_ms": options.request_timeout_ms,
        "metadata_max_age_ms": options.metadata_max_age_ms,
        "security_protocol": options.security_protocol,
    }
    context = ssl_context(options)
    if context is not None:
        kwargs["ssl_context"] = context
    if options.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = options.sasl_mechanism
        kwargs["sasl_plain_username"] = options.sasl_username
        kwargs["sasl_plain_password"] = options.sasl_password
    return kwargs


def producer_kwargs(options: KafkaOptions) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaProducer``."""
    return {
        **common_kwargs(options),
        "acks": options.acks,
        "linger_ms": options.linger_ms,
        "compression_type": options.compression,
        "enable_idempotence": options.effective_idempotence,
        "max_batch_size": options.max_batch_size,
    }


def consumer_kwargs(options: KafkaOptions, *, group: str | None, from_beginning: bool) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka.AIOKafkaConsumer``: manual commits only, never auto-commit."""
    kwargs: dict[str, Any] = {
        **common_kwargs(options),
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        "fetch_max_wait_ms": options.fetch_max_wait_ms,
    }
    for name in ("session_timeout_ms", "heartbeat_interval_ms", "rebalance_timeout_ms", "max_poll_interval_ms"):
        value = getattr(options, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


async def stop_quietly(client: _Stoppable) -> None:
    """Stop a producer or consumer that failed to start; its own error is the one worth raising, so log this one."""
    try:
        await client.stop()
    except Exception as exc:
        logger.debug("streamll kafka: stopping a %s after a failed start raised %r", type(client).__name__, exc)


__all__ = ["common_kwargs", "consumer_kwargs", "producer_kwargs", "ssl_context", "stop_quietly"]
