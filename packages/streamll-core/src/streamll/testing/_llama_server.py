"""Child process of ``LocalModelServer``: llama.cpp's server (from xllamacpp) on a free port.

Run as ``python -m streamll.testing._llama_server MODEL_PATH ALIAS THREADS CTX``. Prints
``listening <url>`` on stdout once the model is loaded and the port accepts connections,
then serves until SIGTERM / SIGINT or until its stdin closes (the parent went away).
"""

from __future__ import annotations

import signal
import sys
import threading


def main(argv: list[str]) -> int:
    model_path, alias, threads, context = argv[0], argv[1], int(argv[2]), int(argv[3])
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.model_alias = {alias}  # xllamacpp wants a set of names
    params.port = 0  # the server picks a free port and reports it in listening_address
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_ctx = context
    params.n_parallel = 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    server = xllamacpp.Server(params)
    print(f"listening {server.listening_address}", flush=True)
    while not stop.wait(0.5):
        pass
    del server  # joins llama.cpp's loop: in-flight replies end, the port closes
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
