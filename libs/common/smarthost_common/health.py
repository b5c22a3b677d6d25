"""`/metrics`, `/healthz` and `/readyz` on `SMARTHOST_METRICS_LISTEN`.

A small WSGI app in a thread, so probes answer even while the event loop is
busy; readiness is a flag the service clears the moment it starts draining.
"""

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from smarthost_common.net import split_hostport


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class HealthServer:
    def __init__(self, listen: str) -> None:
        self.ready = False
        host, port = split_hostport(listen)
        try:
            self._server = make_server(host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as exc:
            raise SystemExit(f"configuration error: SMARTHOST_METRICS_LISTEN: {listen}: {exc}") from None
        self._metrics = make_wsgi_app()

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return self._plain(start_response, True)
        if path == "/readyz":
            return self._plain(start_response, self.ready)
        return self._metrics(environ, start_response)  # type: ignore[no-any-return]

    @staticmethod
    def _plain(start_response: Callable[..., Any], ok: bool) -> list[bytes]:
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"ok\n" if ok else b"not ready\n"]
