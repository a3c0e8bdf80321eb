"""Direktiv functions: ``cmd`` functions run as real ``sh -c`` processes, ``url``
functions called on a real loopback HTTP server, and the retry rule."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statebox.runner.direktiv import _run_cmd
from statebox.runner.direktiv.errors import (
    CANCELLED,
    CONTAINER_FAILED,
    EXECUTION_FAILED,
    INTERNAL,
    RETRIES_EXCEEDED,
    TIMEOUT,
    DirektivError,
    code_matches,
    pattern_regex,
)
from statebox.runner.direktiv.functions import (
    STDERR_LIMIT,
    call_function,
    call_with_retries,
    decode_output,
    encode_input,
    retry_delay,
)
from statebox.runner.direktiv.model import Function, Retries

VAR_URL = "http://127.0.0.1:9/"


def _call(fn: Function, tmp_path: Path, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "input": {"b": 1, "a": [True, None, "x"]},
        "aid": "act-1",
        "tempdir": str(tmp_path),
        "var_url": VAR_URL,
        "env": {"PATH": os.environ["PATH"]},
        "timeout": 10.0,
        "stop": threading.Event(),
    }
    args.update(kwargs)
    return call_function(fn, **args)


def _cmd(cmd: str) -> Function:
    return Function(id="f", cmd=cmd)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            state = file.read().rsplit(b")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def _gone_soon(pid: int, within: float = 2.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def _read_pid(path: Path) -> int:
    for _ in range(200):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.01)
    raise AssertionError(f"{path} was never written")


# --- cmd functions -------------------------------------------------------------------


def test_cmd_gets_input_on_stdin_and_its_json_output_is_the_result(tmp_path: Path) -> None:
    assert _call(_cmd("cat"), tmp_path) == {"a": [True, None, "x"], "b": 1}
    # Go's encoding of the input: compact, keys sorted.
    assert _call(_cmd("cat"), tmp_path, input=[]) == []
    assert _call(_cmd("cat"), tmp_path, input="s") == "s"
    raw = _call(_cmd("cat; printf '\\n'"), tmp_path, input={"z": 1, "a": "é"})
    assert raw == {"a": "é", "z": 1}


def test_cmd_input_is_exactly_go_json(tmp_path: Path) -> None:
    _call(_cmd("cat > input.json"), tmp_path, input={"z": 1, "a": [1.5, "<"]})
    assert (tmp_path / "input.json").read_bytes() == b'{"a":[1.5,"\\u003c"],"z":1}'


def test_cmd_output_that_is_not_json_is_base64(tmp_path: Path) -> None:
    result = _call(_cmd("printf 'hello \\377'"), tmp_path)
    assert base64.b64decode(result) == b"hello \xff"
    assert _call(_cmd("true"), tmp_path) == ""  # empty output: base64 of nothing
    assert _call(_cmd("printf '  \"text\"\\n\\n'"), tmp_path) == "text"


def test_cmd_runs_in_tempdir_with_its_environment(tmp_path: Path) -> None:
    script = (
        'printf \'{"pwd":"%s","d":"%s","s":"%s","v":"%s","a":"%s","mine":"%s"}\' '
        '"$(pwd -P)" "$DIREKTIV_TEMPDIR" "$STATEBOX_TEMPDIR" "$STATEBOX_VAR_URL" '
        '"$STATEBOX_ACTION_ID" "$MINE"'
    )
    env = {"PATH": os.environ["PATH"], "MINE": "yes"}
    result = _call(_cmd(script), tmp_path, env=env, aid="a-42")
    real = os.path.realpath(tmp_path)
    assert result == {
        "pwd": real,
        "d": str(tmp_path),
        "s": str(tmp_path),
        "v": VAR_URL,
        "a": "a-42",
        "mine": "yes",
    }


def test_cmd_nonzero_exit_is_a_catchable_error_with_stderr(tmp_path: Path) -> None:
    logs: list[tuple[str, str]] = []
    with pytest.raises(DirektivError) as info:
        _call(
            _cmd("echo first >&2; echo 'it broke' >&2; exit 3"),
            tmp_path,
            save_log=lambda fid, text: logs.append((fid, text)),
        )
    assert info.value.code == EXECUTION_FAILED
    assert info.value.catchable
    assert "status 3" in info.value.message and info.value.message.endswith("it broke")
    assert logs == [("f", "first\nit broke\n")]


def test_cmd_killed_by_a_signal_reports_the_shell_status(tmp_path: Path) -> None:
    with pytest.raises(DirektivError) as info:
        _call(_cmd("kill -9 $$"), tmp_path)
    assert info.value.code == EXECUTION_FAILED
    assert "status 137" in info.value.message


def test_cmd_stderr_keeps_its_last_bytes_only(tmp_path: Path) -> None:
    logs: list[str] = []
    size = STDERR_LIMIT + 300_000
    result = _call(
        _cmd(f"head -c {size} /dev/zero | tr '\\0' a >&2; echo end >&2; echo 1"),
        tmp_path,
        save_log=lambda _fid, text: logs.append(text),
    )
    assert result == 1
    [text] = logs
    assert text.startswith("[300004 bytes dropped]\n")
    assert text.endswith("aaend\n")
    assert len(text) < STDERR_LIMIT + 100


def test_cmd_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(DirektivError) as info:
        _call(_cmd(f"sleep 30 & echo $! > {pidfile}; wait"), tmp_path, timeout=0.5)
    assert time.monotonic() - started < 4
    assert info.value.code == TIMEOUT and info.value.catchable
    assert "timed out" in info.value.message
    assert _gone_soon(_read_pid(pidfile))


def test_cmd_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_run_cmd, "GRACE_SEC", 0.5)
    pidfile = tmp_path / "child.pid"
    script = f"trap '' TERM; sleep 30 & echo $! > {pidfile}; wait; wait"
    with pytest.raises(DirektivError) as info:
        _call(_cmd(script), tmp_path, timeout=0.3)
    assert info.value.code == TIMEOUT
    # The call returned only once the group was gone: nothing outlives it.
    assert not _alive(_read_pid(pidfile))


def test_cmd_stop_event_stops_the_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DirektivError) as info:
        _call(_cmd(f"sleep 30 & echo $! > {pidfile}; wait"), tmp_path, stop=stop)
    assert time.monotonic() - started < 4
    assert info.value.code == CANCELLED and not info.value.catchable
    assert _gone_soon(_read_pid(pidfile))


def test_cmd_not_started_when_already_stopped(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(DirektivError) as info:
        _call(_cmd("touch ran"), tmp_path, stop=stop)
    assert info.value.code == CANCELLED
    assert not (tmp_path / "ran").exists()


def test_cmd_background_leftover_does_not_hold_the_call(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    result = _call(_cmd(f"sleep 30 & echo $! > {pidfile}; echo '{{\"ok\":1}}'"), tmp_path)
    assert result == {"ok": 1}
    assert time.monotonic() - started < 4
    assert _gone_soon(_read_pid(pidfile))


def test_cmd_output_past_its_limit_stops_the_command(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DirektivError) as info:
        _call(_cmd("yes"), tmp_path, limit=10_000)
    assert time.monotonic() - started < 4
    assert info.value.code == INTERNAL and not info.value.catchable
    assert "10000 bytes" in info.value.message
    # Exactly at the limit is fine.
    assert len(_call(_cmd("head -c 9998 /dev/zero | tr '\\0' a; echo"), tmp_path, limit=9999)) > 0


def test_cmd_that_cannot_start_is_uncatchable(tmp_path: Path) -> None:
    with pytest.raises(DirektivError) as info:
        _call(_cmd("true"), tmp_path, tempdir=str(tmp_path / "missing"))
    assert info.value.code == INTERNAL and not info.value.catchable
    assert "cannot start" in info.value.message


def test_input_that_is_not_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DirektivError) as info:
        _call(_cmd("touch ran"), tmp_path, input={"x": object()})
    assert info.value.code == INTERNAL
    assert not (tmp_path / "ran").exists()


def test_function_without_cmd_or_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DirektivError) as info:
        _call(Function(id="img", image="direktiv/request"), tmp_path)
    assert info.value.code == INTERNAL and '"img"' in info.value.message


# --- decoding and encoding ----------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _as_float64(value: Any) -> Any:
    """``value`` as Go's decoder holds it: an integer past 2**53 is the float64 it
    rounds to."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else float(value)
    if isinstance(value, list):
        return [_as_float64(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_float64(item) for key, item in value.items()}
    return value


@given(_json, st.sampled_from(["", " ", "\n", "\t\r\n "]))
def test_json_output_decodes_to_its_value(value: Any, space: str) -> None:
    data = (space + json.dumps(value) + space).encode()
    assert decode_output(data) == _as_float64(value)


@given(st.binary(max_size=200))
def test_any_output_is_its_json_value_or_its_base64(data: bytes) -> None:
    result = decode_output(data)
    try:
        parsed = json.loads(data.decode("utf-8"))
    except ValueError:
        assert base64.b64decode(result) == data
    else:
        if parsed == parsed:  # NaN never comes back as a value
            assert result == parsed


def test_decoding_refuses_what_go_refuses() -> None:
    for data in (b"NaN", b"[Infinity]", b"\xef\xbb\xbf{}", b"1 2", b"[" * 300 + b"]" * 300):
        assert base64.b64decode(decode_output(data)) == data
    # Go reads invalid UTF-8 inside a string as U+FFFD, a lone surrogate escape too.
    assert decode_output(b'"a\xffb"') == "a\ufffdb"
    assert decode_output(b'"\\ud800x"') == "\ufffdx"
    # A number past a float64's range is an error in Go: the output is not JSON.
    for data in (b"1e400", b"[-1e400]", b"9" * 400):
        assert base64.b64decode(decode_output(data)) == data
    # Every number is a float64: -0 keeps its sign, 2**53 + 1 rounds.
    zero = decode_output(b"-0")
    assert zero == 0 and str(zero) == "-0.0"
    assert decode_output(b"9007199254740993") == 9007199254740992.0


@given(_json)
def test_encoded_input_reads_back(value: Any) -> None:
    assert json.loads(encode_input(value)) == value


# --- url functions ------------------------------------------------------------------


class _FunctionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.flaky_left = 0
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _FunctionServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path.split("?")[0]
        self.server.requests.append((self.path, dict(self.headers.items()), body))
        if path == "/echo":
            self._reply(200, body, "application/json")
        elif path == "/text":
            self._reply(200, b"plain \x00 bytes")
        elif path == "/error":
            self._reply(
                500,
                b"ignored",
                headers={"Direktiv-ErrorCode": "my.code", "Direktiv-ErrorMessage": "boom"},
            )
        elif path == "/error-200":
            self._reply(200, b"{}", headers={"Direktiv-ErrorCode": "ok.but.not"})
        elif path == "/fail":
            self._reply(503, b"overloaded\ntry later")
        elif path == "/flaky":
            if self.server.flaky_left > 0:
                self.server.flaky_left -= 1
                self._reply(500, b"", headers={"Direktiv-ErrorCode": "io.flaky"})
            else:
                self._reply(200, b'"done"')
        elif path == "/slow":
            self.server.release.wait(20)
            self._reply(200, b"1")
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                if self.server.release.wait(0.1):
                    return
                self.wfile.write(b" ")
                self.wfile.flush()
        elif path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", "999999999")
            self.end_headers()
        elif path == "/big-stream":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(100):
                self.wfile.write(b"x" * 10_000)
        else:
            self._reply(404, b"no such path")

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_FunctionServer]:
    srv = _FunctionServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


def _url(server: _FunctionServer, path: str) -> Function:
    return Function(id="u", url=server.url + path)


def test_url_gets_input_and_headers_and_returns_its_json(
    server: _FunctionServer, tmp_path: Path
) -> None:
    result = _call(_url(server, "/echo"), tmp_path, aid="act-9", iterator=2)
    assert result == {"a": [True, None, "x"], "b": 1}
    [(_path, headers, body)] = server.requests
    assert body == b'{"a":[true,null,"x"],"b":1}'
    assert headers["Content-Type"] == "application/json"
    assert headers["Direktiv-ActionID"] == "act-9"
    assert headers["Direktiv-TempDir"] == str(tmp_path)
    assert headers["Direktiv-Iterator"] == "2"
    assert headers["Statebox-Var-URL"] == VAR_URL


def test_url_reply_that_is_not_json_is_base64(server: _FunctionServer, tmp_path: Path) -> None:
    assert base64.b64decode(_call(_url(server, "/text"), tmp_path)) == b"plain \x00 bytes"


def test_url_error_code_header_is_a_catchable_error(
    server: _FunctionServer, tmp_path: Path
) -> None:
    with pytest.raises(DirektivError) as info:
        _call(_url(server, "/error"), tmp_path)
    assert (info.value.code, info.value.message, info.value.catchable) == ("my.code", "boom", True)
    # The code wins even on a 2xx reply, as in Direktiv's sidecar.
    with pytest.raises(DirektivError) as info:
        _call(_url(server, "/error-200"), tmp_path)
    assert (info.value.code, info.value.message) == ("ok.but.not", "")


def test_url_non_2xx_without_code_is_container_failed(
    server: _FunctionServer, tmp_path: Path
) -> None:
    fn = Function(id="u", url=server.url.replace("http://", "http://user:secret@") + "/fail?t=tok")
    with pytest.raises(DirektivError) as info:
        _call(fn, tmp_path)
    assert info.value.code == CONTAINER_FAILED and info.value.catchable
    assert "HTTP 503" in info.value.message and info.value.message.endswith("try later")
    # The URL's credentials and query (a token, maybe) are not shown.
    assert "secret" not in info.value.message and "tok" not in info.value.message
    assert server.requests[0][0] == "/fail?t=tok"


def test_url_unreachable_or_not_http_is_uncatchable(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/", "ftp://127.0.0.1/x", "http:///nohost"):
        with pytest.raises(DirektivError) as info:
            _call(Function(id="u", url=url), tmp_path)
        assert info.value.code == INTERNAL and not info.value.catchable, url


def test_url_timeout_bounds_the_whole_call(server: _FunctionServer, tmp_path: Path) -> None:
    for path in ("/slow", "/trickle"):  # no answer; an answer a byte at a time
        started = time.monotonic()
        with pytest.raises(DirektivError) as info:
            _call(_url(server, path), tmp_path, timeout=0.5)
        assert time.monotonic() - started < 2, path
        assert info.value.code == TIMEOUT and info.value.catchable


@contextlib.contextmanager
def _never_accepting() -> Iterator[str]:
    """A listener whose backlog is full: a connect to it hangs in the handshake (the
    kernel drops the SYN), as one to a host behind a dropping firewall does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers: list[socket.socket] = []
        try:
            for _ in range(8):  # until one no longer connects at once
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            else:  # pragma: no cover - a kernel that queues without bound
                pytest.skip("the backlog never filled")
            yield f"http://127.0.0.1:{port}/"
        finally:
            for filler in fillers:
                filler.close()


def _url_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "statebox-function-url"]


@pytest.mark.parametrize("ending", ["timeout", "stop"])
def test_a_connect_that_hangs_ends_with_the_call(tmp_path: Path, ending: str) -> None:
    """A connect that never completes ends by the call's deadline (or its stop), and no
    thread is left behind: the connecting thread used to block in connect() for the
    action's whole timeout (15 minutes by default), past the call's end."""
    stop = threading.Event()
    if ending == "stop":
        threading.Timer(0.3, stop.set).start()
    with _never_accepting() as url:
        started = time.monotonic()
        with pytest.raises(DirektivError) as info:
            _call(
                Function(id="u", url=url),
                tmp_path,
                stop=stop,
                timeout=0.5 if ending == "timeout" else 60.0,
            )
        took = time.monotonic() - started
        assert took < 1.5, took
        assert info.value.code == (TIMEOUT if ending == "timeout" else CANCELLED)
        assert not _url_threads()  # joined before the call returned


def test_url_stop_event_ends_the_call(server: _FunctionServer, tmp_path: Path) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DirektivError) as info:
        _call(_url(server, "/slow"), tmp_path, stop=stop)
    assert time.monotonic() - started < 2
    assert info.value.code == CANCELLED and not info.value.catchable


def test_url_reply_past_its_limit_is_refused(server: _FunctionServer, tmp_path: Path) -> None:
    for path in ("/big-declared", "/big-stream"):
        with pytest.raises(DirektivError) as info:
            _call(_url(server, path), tmp_path, limit=50_000)
        assert info.value.code == INTERNAL and "50000 bytes" in info.value.message, path


# --- retries ------------------------------------------------------------------------


class _Flaky:
    def __init__(self, failures: int, code: str = "io.flaky", catchable: bool = True) -> None:
        self.calls = 0
        self.failures, self.code, self.catchable = failures, code, catchable

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise DirektivError(self.code, f"failure {self.calls}", catchable=self.catchable)
        return "done"


def test_retries_until_success() -> None:
    flaky = _Flaky(2)
    retries = Retries(max_attempts=3, codes=("flaky",), delay_sec=0.01)
    assert call_with_retries(flaky, retries, threading.Event()) == "done"
    assert flaky.calls == 3


def test_retries_exhausted_become_retries_exceeded() -> None:
    flaky = _Flaky(10)
    retries = Retries(max_attempts=2, codes=("*",), delay_sec=0.0)
    with pytest.raises(DirektivError) as info:
        call_with_retries(flaky, retries, threading.Event())
    assert flaky.calls == 3  # the call and 2 retries
    assert info.value.code == RETRIES_EXCEEDED and info.value.catchable
    assert "io.flaky: failure 3" in info.value.message
    # max_attempts 0: a matching code is not retried, and becomes retries.exceeded.
    flaky = _Flaky(10)
    with pytest.raises(DirektivError) as info:
        call_with_retries(flaky, Retries(max_attempts=0, codes=("io",)), threading.Event())
    assert (flaky.calls, info.value.code) == (1, RETRIES_EXCEEDED)


@pytest.mark.parametrize(
    ("flaky", "retries"),
    [
        (_Flaky(1, "other.code"), Retries(max_attempts=3, codes=("io\\.flaky",))),
        (_Flaky(1, catchable=False), Retries(max_attempts=3, codes=("*",))),
        (_Flaky(1, TIMEOUT), Retries(max_attempts=3, codes=("*",))),
        (_Flaky(1), None),
    ],
)
def test_errors_not_retried_pass_through(flaky: _Flaky, retries: Retries | None) -> None:
    with pytest.raises(DirektivError) as info:
        call_with_retries(flaky, retries, threading.Event())
    assert flaky.calls == 1 and info.value.code == flaky.code


def test_retry_delay_grows_by_the_multiplier() -> None:
    assert [retry_delay(n, 0.5, 2.0) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(5, 0.5, 0.0) == 0.5  # a multiplier of 0: no growth
    assert retry_delay(100_000, 1.0, 10.0) == threading.TIMEOUT_MAX


def test_retry_waits_and_a_stop_ends_the_wait() -> None:
    flaky = _Flaky(1)
    started = time.monotonic()
    assert call_with_retries(flaky, Retries(1, ("*",), delay_sec=0.3), threading.Event()) == "done"
    assert time.monotonic() - started >= 0.3
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(DirektivError) as info:
        call_with_retries(_Flaky(5), Retries(3, ("*",), delay_sec=30.0), stop)
    assert time.monotonic() - started < 2
    assert info.value.code == CANCELLED


def test_code_matches_as_direktiv() -> None:
    assert code_matches("*", "anything")
    assert code_matches("flaky", "io.flaky.error")  # unanchored
    assert not code_matches("^flaky$", "io.flaky")
    assert code_matches("io\\.direktiv\\..*", "io.direktiv.error.execution")
    assert not code_matches("(", "(")  # a pattern that does not compile matches nothing
    # Only a lone "*" is ".*": "*.execution" is a regex that does not compile (the loader
    # refuses it), so it matches nothing.
    assert pattern_regex("*.execution") is None
    assert not code_matches("*.execution", EXECUTION_FAILED)
    assert code_matches("x*", "")  # a pattern as it is: "x*" matches the empty string


def test_retries_with_real_functions(server: _FunctionServer, tmp_path: Path) -> None:
    server.flaky_left = 2
    fn = _url(server, "/flaky")
    retries = Retries(max_attempts=5, codes=("io.flaky",), delay_sec=0.01, multiplier=2.0)
    stop = threading.Event()
    assert call_with_retries(lambda: _call(fn, tmp_path), retries, stop) == "done"
    assert len(server.requests) == 3
    # A command failing twice, then succeeding (its count kept in a file).
    counter = tmp_path / "n"
    cmd = _cmd(
        f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ "$n" -ge 2 ]'
    )
    retries = Retries(max_attempts=3, codes=(EXECUTION_FAILED,), delay_sec=0.01)
    assert call_with_retries(lambda: _call(cmd, tmp_path), retries, stop) == ""
    assert counter.read_text().strip() == "3"


def test_retries_match_codes_by_the_one_pattern_rule(tmp_path: Path) -> None:
    """A ``retries.codes`` entry is matched as a catch's ``error`` is: "*.execution" does
    not compile and retries nothing; ".*execution" retries a failed command."""
    counter = tmp_path / "n"
    cmd = _cmd(f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; exit 1")
    stop = threading.Event()
    for pattern, calls in (("*.execution", 1), (".*execution", 3)):
        counter.unlink(missing_ok=True)
        retries = Retries(max_attempts=2, codes=(pattern,), delay_sec=0.0)
        with pytest.raises(DirektivError) as info:
            call_with_retries(lambda: _call(cmd, tmp_path), retries, stop)
        assert counter.read_text().strip() == str(calls)
        assert info.value.code == (EXECUTION_FAILED if calls == 1 else RETRIES_EXCEEDED)
