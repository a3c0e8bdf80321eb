"""The server's secret key is the operator's business (issue #16, SPEC §8): a real
``statebox`` server in a subprocess, over a sealed SQLite file.

A value sealed under another key than the server's (the wrong key file, a lost key)
answers a 500 ``secret_key`` with a generic message and a request id: no key file path,
no key, no key id, no value. The server's log has the details under that id (the path
and the key ids, never the value). A key file problem (readable by others) names no
path to the client either: the key file's path is one of the words no answer carries.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx

from statebox.backends.sealing.keyring import decode_key, generate_key, key_id
from statebox.core.errors import ConfigurationError, SecretKeyError
from statebox.server.disclosure import Disclosure, key_file_words

from .server_util import running_server

SECRET = "hunter2-correct-horse"
URL = "/v1/kv/custom/creds/login"
GENERIC = "the server cannot open a secret value with its key"


def _key_file(path: Path, mode: int = 0o600) -> str:
    """A key file at ``path`` holding a new key (returned)."""
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, mode)
    return key


def _env(key_file: Path) -> dict[str, str]:
    return {
        "STATEBOX_SECRET_NAMESPACES": "custom/creds",
        "STATEBOX_SECRET_KEY": "",  # the key file, not a key from the environment
        "STATEBOX_SECRET_KEY_FILE": str(key_file),
    }


def _withheld(answer: httpx.Response, *leaks: str) -> str:
    """The request id of an answer that withheld its details; none of ``leaks`` in it."""
    error = json.loads(answer.text)["error"]
    request_id = error["requestId"]
    assert re.fullmatch(r"[0-9a-f]{16}", request_id), error
    assert answer.headers["x-request-id"] == request_id
    assert request_id in error["message"] and "log" in error["message"]
    for leak in leaks:
        assert leak not in answer.text, (leak, answer.text)
    return str(request_id)


def test_the_wrong_key_is_a_generic_500_and_the_details_go_to_the_log(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    mine, other = tmp_path / "keys" / "mine.key", tmp_path / "keys" / "other.key"
    mine_key, other_key = _key_file(mine), _key_file(other)
    with running_server(store, env=_env(mine)) as first:
        assert first.client.put(URL, json={"password": SECRET}).status_code == 200
    with running_server(store, env=_env(other)) as server:
        for answer in (
            server.client.get(URL),
            server.client.get(URL + "?reveal=true"),
            server.client.get(f"/v1/entries{URL[6:]}"),
        ):
            assert answer.status_code == 500, answer.text
            error = json.loads(answer.text)["error"]
            assert error["kind"] == "secret_key" and GENERIC in error["message"]
            leaks = (str(tmp_path), "other.key", "mine.key", mine_key, other_key, SECRET)
            request_id = _withheld(answer, *leaks, key_id(decode_key(mine_key, "k")))
        server.stop()
        log = server.log_text()
    line = next(line for line in log.splitlines() if request_id in line)
    assert "secret_key" in line and str(other) in line  # the detail: which key file
    assert key_id(decode_key(mine_key, "k")) in line  # the key id the value was sealed with
    for leak in (SECRET, mine_key, other_key):
        assert leak not in log


def test_a_key_file_problem_names_no_path_to_the_client(tmp_path: Path) -> None:
    key_file = tmp_path / "private-keys" / "secret.key"
    key = _key_file(key_file, mode=0o644)  # readable by others: refused
    with running_server(f"sqlite:///{tmp_path / 'state.db'}", env=_env(key_file)) as server:
        answer = server.client.put(URL, json={"password": SECRET})
        assert answer.status_code in (400, 500), answer.text
        request_id = _withheld(answer, "private-keys", str(key_file), key, SECRET)
        server.stop()
        log = server.log_text()
    line = next(line for line in log.splitlines() if request_id in line)
    assert str(key_file) in line and key not in log


def test_a_message_naming_the_key_file_is_withheld(tmp_path: Path) -> None:
    path = str(tmp_path / "k" / "secret.key")

    class Sealed:  # a backend as the server sees it: the environment it reads keys from
        def __init__(self) -> None:
            self.environ = {"STATEBOX_SECRET_KEY_FILE": path}

    words = key_file_words(Sealed())
    assert words == (path,)
    body, request_id = Disclosure(words).body(ConfigurationError(f"bad key file {path}"))
    assert request_id is not None and path not in body
    body, request_id = Disclosure(()).body(SecretKeyError(f"wrong key, from {path}"))
    assert request_id is not None and path not in body and GENERIC in body
    body, request_id = Disclosure(words).body(ConfigurationError("no path here"))
    assert request_id is None and "no path here" in body
