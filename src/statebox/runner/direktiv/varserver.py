"""The ``/var`` endpoint an action's function reads and writes variables through, as
Direktiv's sidecar serves it on ``127.0.0.1:8889`` (``pkg/sidecar/local-server.go``
``varHandler``): ``GET /var?aid=&scope=&key=`` answers the variable's raw bytes (with
its content type; a JSON entry as its JSON text), ``POST`` stores the request body as
the variable, the ``Content-Type`` header its content type.

statebox serves it for the duration of one action (:func:`var_endpoint`), on a port of
its own (the function learns the URL from ``STATEBOX_VAR_URL``), and only there:

- loopback only (``127.0.0.1``); any ``aid`` but the action's → 404, as Direktiv answers
  an unknown action id; a scope that is not ``instance``, ``workflow`` or ``namespace``,
  or a key that is not a variable name → 400; a missing variable → 404; a method other
  than GET and POST → 405; another path → 404;
- a body over the store's binary limit → 413, before it is read; a POST without a
  ``Content-Length`` → 411 (no chunked bodies);
- each connection has ``timeout`` seconds in all (then its socket is shut), each
  request its own thread, at most ``max_connections`` at once (others → 503), so a slow
  or stuck client holds up neither the others nor the action's end;
- once the action ends nothing more is written: a write still in flight either landed
  before the endpoint closed or is answered 503.

A write is :meth:`Variables.write_raw` — guarded like a setter's when the instance read
the variable (a getter, the action's ``files:``, a GET here: each records the version it
read), so a change by another instance since is answered 409 (nothing written) rather
than overwritten; GET it again and retry. A body sent as exactly ``application/json`` is stored as a
JSON entry (it must then be JSON: 400 if not); any other content type as a binary one
(``""`` → ``application/octet-stream``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from ...core.errors import StateboxError
from ...core.values import JSON_CONTENT_TYPE, RawJSON
from .errors import DirektivError, VarConflict
from .variables import Variables, VarWrite, check_key, check_scope

__all__ = ["DEFAULT_TIMEOUT_SEC", "MAX_CONNECTIONS", "var_endpoint"]

#: Seconds one connection may take, from accept to the last byte answered.
DEFAULT_TIMEOUT_SEC: Final = 60.0
#: Connections served at once; more are answered 503.
MAX_CONNECTIONS: Final = 16

_BUSY: Final = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
)


@contextlib.contextmanager
def var_endpoint(
    aid: str,
    variables: Variables,
    *,
    max_body: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_SEC,
    max_connections: int = MAX_CONNECTIONS,
) -> Iterator[str]:
    """Serve ``/var`` for the action ``aid`` while the block runs; yields the base URL
    (``http://127.0.0.1:PORT``, no ``/var``). ``max_body`` defaults to the store's
    binary limit."""
    limit = variables.store.binary_limit if max_body is None else max_body
    server = _VarServer(aid, variables, limit, timeout, max_connections)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"statebox-var-{aid}",
        daemon=True,
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.close()
        thread.join()


class _VarServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, aid: str, variables: Variables, max_body: int, timeout: float, max_connections: int
    ) -> None:
        self.aid = aid
        self.variables = variables
        self.max_body = max_body
        self.timeout_sec = timeout
        self.closed = False
        #: Held while writing a variable, and by :meth:`close`: no write after the end.
        self.write_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._conns_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        try:
            with self._conns_lock:
                self._conns.add(request)
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        timer = threading.Timer(self.timeout_sec, _cut, (request,))
        timer.daemon = True
        timer.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            timer.cancel()
            self._forget(request)

    def _forget(self, request: socket.socket) -> None:
        with self._conns_lock:
            if request not in self._conns:
                return
            self._conns.discard(request)
        self._slots.release()

    def close(self) -> None:
        with self.write_lock:
            self.closed = True
        self.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            _cut(conn)
        self.server_close()


def _cut(conn: socket.socket) -> None:
    # Shutting the socket wakes a handler blocked reading it; its thread then ends.
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server_version = "statebox-var"
    sys_version = ""

    @property
    def _server(self) -> _VarServer:
        return cast(_VarServer, self.server)

    def setup(self) -> None:
        # The socket timeout bounds each read; _VarServer's timer bounds the whole.
        self.request.settimeout(self._server.timeout_sec)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the action's log is the function's; the endpoint says nothing

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _not_allowed(self) -> None:
        self._reply(405, "method not allowed: use GET or POST\n", allow="GET, POST")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        if url.path != "/var":
            self._reply(404, f"no such path: {url.path}\n")
            return
        try:
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=16)
        except ValueError:
            self._reply(400, "too many query parameters\n")
            return
        aid, scope, key = (query.get(name, [""])[0] for name in ("aid", "scope", "key"))
        if aid != self._server.aid:
            self._reply(404, f"action id {aid!r} not found\n")
            return
        try:
            scope = check_scope(scope)
            key = check_key(key)
        except DirektivError as exc:
            self._reply(400, f"{exc.message}\n")
            return
        try:
            if method == "GET":
                self._get(scope, key)
            else:
                self._post(scope, key)
        except VarConflict as exc:
            self._reply(409, f"{exc.message}\n")
        except DirektivError as exc:
            self._reply(400, f"{exc.code}: {exc.message}\n")
        except StateboxError as exc:
            self._reply(500, f"{exc.message}\n")

    def _get(self, scope: str, key: str) -> None:
        found = self._server.variables.read_raw(scope, key)
        if found is None:
            self._reply(404, f"{scope} variable {key!r} not found\n")
            return
        data, content_type = found
        self._reply(200, data, content_type=content_type or "application/octet-stream")

    def _post(self, scope: str, key: str) -> None:
        if self.headers.get("Transfer-Encoding"):
            self._reply(411, "send the body with a Content-Length (no chunked bodies)\n")
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._reply(411, "a Content-Length is required\n")
            return
        if not length_text.strip().isdigit():
            self._reply(400, "bad Content-Length\n")
            return
        length = int(length_text)
        if length > self._server.max_body:
            self._reply(413, f"body over the limit of {self._server.max_body} bytes\n")
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return  # the client went away (or its time ran out) mid-body
        content_type = (self.headers.get("Content-Type") or "").strip()
        server = self._server
        with server.write_lock:
            if server.closed:
                self._reply(503, "the action has ended\n")
                return
            if content_type == JSON_CONTENT_TYPE:
                if not _is_json(body):
                    self._reply(400, "the body is not JSON (Content-Type: application/json)\n")
                    return
                server.variables.write([VarWrite(scope, key, RawJSON(body))])
            else:
                server.variables.write_raw([(scope, key, body, content_type)])
        self._reply(200, b"")

    def _reply(
        self,
        status: int,
        body: str | bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        allow: str | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if allow is not None:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return True
