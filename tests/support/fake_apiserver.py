"""A small stand-in for the Kubernetes API server: list and watch of one namespaced resource, and get of Secrets.

It speaks the protocol clients rely on: a list answers the items and the
collection's resourceVersion; a watch (`?watch=true&resourceVersion=N`)
streams JSON lines of ADDED / MODIFIED / DELETED events newer than N, and
answers an ERROR event with code 410 when N is older than the history it
keeps (after `compact()`), which the client must answer with a new list.
"""

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

Obj = dict[str, Any]
SECRET_PATH = re.compile(r"/api/v1/namespaces/(?P<namespace>[^/]+)/secrets/(?P<name>[^/]+)")


class FakeApiServer:
    def __init__(self, group: str, version: str, plural: str, kind: str) -> None:
        self._group, self._version, self._plural, self._kind = group, version, plural, kind
        self._objects: dict[tuple[str, str], Obj] = {}
        self._events: list[tuple[int, str, Obj]] = []
        self._secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self._version_counter = 100
        # Watches from a resourceVersion older than this get 410 Gone.
        self._oldest = 0
        # Bumped to cut every open watch off mid-stream, as a dropped connection would.
        self._generation = 0
        self._changed = threading.Condition()
        self.lists = 0
        self.watches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-apiserver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path, namespace: str) -> None:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "test", "user": {"token": "test-token"}}],
                    "contexts": [
                        {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}
                    ],
                    "current-context": "test",
                }
            )
        )

    def put(self, namespace: str, name: str, spec: Obj) -> None:
        """Create or replace an object: an ADDED or MODIFIED event."""
        with self._changed:
            kind = "MODIFIED" if (namespace, name) in self._objects else "ADDED"
            self._version_counter += 1
            obj = {
                "apiVersion": f"{self._group}/{self._version}",
                "kind": self._kind,
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self._version_counter)},
                "spec": spec,
            }
            self._objects[(namespace, name)] = obj
            self._events.append((self._version_counter, kind, obj))
            self._changed.notify_all()

    def put_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        with self._changed:
            self._secrets[(namespace, name)] = data

    def _secret(self, namespace: str, name: str) -> Obj | None:
        with self._changed:
            data = self._secrets.get((namespace, name))
        if data is None:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
        }

    def delete(self, namespace: str, name: str) -> None:
        with self._changed:
            obj = self._objects.pop((namespace, name))
            self._version_counter += 1
            gone = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._version_counter)}}
            self._events.append((self._version_counter, "DELETED", gone))
            self._changed.notify_all()

    def compact(self) -> None:
        """Forget the event history, as etcd compaction does, and cut the open watches off."""
        with self._changed:
            self._oldest = self._version_counter
            self._events.clear()
            self._generation += 1
            self._changed.notify_all()

    def drop_watches(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _collection(self, namespace: str) -> Obj:
        with self._changed:
            items = [obj for (ns, _), obj in sorted(self._objects.items()) if ns == namespace]
            return {
                "apiVersion": f"{self._group}/{self._version}",
                "kind": f"{self._kind}List",
                "metadata": {"resourceVersion": str(self._version_counter)},
                "items": items,
            }

    def _stream(self, namespace: str, since: int, timeout: float) -> Iterator[bytes | None]:
        """Event lines newer than `since`; None when the connection is to be cut."""
        deadline = time.monotonic() + timeout
        with self._changed:
            generation = self._generation
            if since < self._oldest:
                gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired"}
                yield _line({"type": "ERROR", "object": {**gone, "message": "too old resource version", "code": 410}})
                return
        while time.monotonic() < deadline:
            with self._changed:
                if self._generation != generation:
                    yield None
                    return
                pending = [(v, kind, obj) for v, kind, obj in self._events if v > since]
                if not pending:
                    self._changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                    continue
            for version, kind, obj in pending:
                since = version
                if obj["metadata"]["namespace"] == namespace:
                    yield _line({"type": kind, "object": obj})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        prefix = f"/apis/{self._group}/{self._version}/namespaces/"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                secret = SECRET_PATH.fullmatch(url.path)
                if secret:
                    found = fake._secret(secret["namespace"], secret["name"])
                    if found is None:
                        self._send_json(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": url.path})
                    else:
                        self._send_json(200, found)
                    return
                namespace, _, plural = url.path.removeprefix(prefix).partition("/")
                if not url.path.startswith(prefix) or plural != fake._plural:
                    self._send_json(404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": url.path})
                    return
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                if query.get("watch") in ("true", "1", "True"):
                    fake.watches += 1
                    since = int(query.get("resourceVersion") or 0)
                    self._watch(namespace, since, float(query.get("timeoutSeconds", 300)))
                else:
                    fake.lists += 1
                    self._send_json(200, fake._collection(namespace))

            def _send_json(self, code: int, body: Obj) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _watch(self, namespace: str, since: int, timeout: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                try:
                    for line in fake._stream(namespace, since, timeout):
                        if line is None:
                            # Cut off without the closing chunk: the client sees a broken stream.
                            self.close_connection = True
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler


def _line(event: Obj) -> bytes:
    return json.dumps(event).encode() + b"\n"
