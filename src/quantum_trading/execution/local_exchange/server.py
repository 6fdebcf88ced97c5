"""Running the local exchange: in the foreground (CLI) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI

from quantum_trading.errors import ExchangeError

__all__ = ["serve", "serve_in_thread"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ExchangeError(
            f"local exchange cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
    sock.listen(128)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.contextmanager
def serve_in_thread(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, startup_timeout_s: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread while the ``with`` block runs.

    Parameters
    ----------
    app:
        The ASGI app (e.g. from :func:`create_app`).
    host, port:
        Where to listen; ``port=0`` picks a free port.
    startup_timeout_s:
        How long to wait for the server to accept connections (seconds).

    Yields
    ------
    str
        The base URL, e.g. ``"http://127.0.0.1:54321"``.

    Examples
    --------
    >>> with serve_in_thread(create_app(data_dir)) as base_url:  # doctest: +SKIP
    ...     httpx.get(f"{base_url}/fapi/v1/ping").json()
    {}
    """
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="local-exchange", daemon=True
    )
    thread.start()
    trading = getattr(app.state, "trading", None)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ExchangeError(f"local exchange did not start on {host}:{bound_port}")
            time.sleep(0.01)
        if trading is not None:
            trading.start()  # the automatic replay clock, when configured
        yield _url(host, bound_port)
    finally:
        if trading is not None:
            trading.stop()
        server.should_exit = True
        thread.join(timeout=startup_timeout_s)
        sock.close()


def serve(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    log_level: str = "info",
    on_listen: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` in the foreground until interrupted (Ctrl-C).

    ``on_listen`` is called with the base URL once the socket is bound (``port=0`` picks a free
    port). In trading mode the automatic replay clock runs while the server does. Listening on anything other than a loopback address exposes the data to the
    network; the default is 127.0.0.1.
    """
    sock = _bind(host, port)
    trading = getattr(app.state, "trading", None)
    try:
        if on_listen is not None:
            on_listen(_url(host, sock.getsockname()[1]))
        if trading is not None:
            trading.start()  # the automatic replay clock, when configured
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])
    finally:
        if trading is not None:
            trading.stop()
        sock.close()
