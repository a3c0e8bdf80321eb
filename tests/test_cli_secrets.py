"""``statebox secrets keygen`` and ``statebox secrets rotate`` (issue #16): the real
executable in subprocesses, on real SQLite files, with the key in the environment or
in the key file.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path

import pytest

from statebox.backends.sealing.keyring import key_id

from .test_cli import Cli, clean_env

__all__ = ["clean_env"]  # the fixture, used here by name

CREDS = ("--scope", "custom", "--namespace", "creds")
KEY_LINE = re.compile(r"[A-Za-z0-9_-]{43}=\n")


def _key_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.strip())


def _stored_key_ids(db: Path) -> set[str]:
    """The key ids the live sealed values of the SQLite file were sealed under (a sealed
    value: b"SBX1", the 8 bytes of the key id, the nonce, the ciphertext)."""
    with sqlite3.connect(db) as conn:
        blobs = [row[0] for row in conn.execute("SELECT data FROM statebox_entries")]
    return {bytes(b)[4:12].hex() for b in blobs if bytes(b).startswith(b"SBX1")}


@pytest.fixture
def cli(tmp_path: Path, clean_env: dict[str, str]) -> Cli:
    env = {**clean_env, "STATEBOX_SECRET_NAMESPACES": "custom/creds"}
    env.pop("STATEBOX_SECRET_KEY", None)
    env.pop("STATEBOX_SECRET_KEY_FILE", None)
    return Cli(env, f"sqlite:///{tmp_path / 'state.db'}")


def test_keygen_prints_one_new_key_alone_on_its_line(cli: Cli, tmp_path: Path) -> None:
    runs = [cli("secrets", "keygen") for _ in range(3)]
    keys = [run.text for run in runs]
    for run, text in zip(runs, keys, strict=True):
        assert run.err == "" and KEY_LINE.fullmatch(text), text
        assert len(_key_bytes(text)) == 32
    assert len(set(keys)) == 3  # random every time
    # it stores nothing: no store file, no key file
    assert not (tmp_path / "state.db").exists()
    assert not (Path(cli.env["STATEBOX_HOME"]) / "secret.key").exists()
    # and it is a key the store takes
    sealed = {"STATEBOX_SECRET_KEY": keys[0].strip()}
    assert cli("set", "k", '"v"', *CREDS, env=sealed).data["version"] == 1
    assert _stored_key_ids(tmp_path / "state.db") == {key_id(_key_bytes(keys[0]))}


def test_rotate_with_the_key_file_adds_a_key_and_reseals_everything(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    for n in range(3):
        cli("set", f"k{n}", f'{{"n": {n}}}', *CREDS)
    cli("set", "open", '{"n": 9}', "--scope", "custom", "--namespace", "plain")
    key_file = Path(cli.env["STATEBOX_HOME"]) / "secret.key"
    (old,) = key_file.read_text().split()
    old_id = key_id(_key_bytes(old))
    assert _stored_key_ids(db) == {old_id}

    report = cli("secrets", "rotate").data
    new, kept = key_file.read_text().split()
    assert kept == old  # the old key stays: history sealed under it stays readable
    new_id = key_id(_key_bytes(new))
    assert report == {
        "operation": "rotate",
        "keyId": new_id,
        "resealed": 3,
        "keyspaces": 1,
        "previousKeyIds": [old_id],
    }
    assert _stored_key_ids(db) == {new_id}
    assert cli("get", "k1", *CREDS, "--reveal").data["value"] == {"n": 1}
    history = cli("history", "k1", *CREDS, "--include-values", "--reveal").data["versions"]
    assert isinstance(history, list)
    assert [v["value"] for v in history] == [{"n": 1}, {"n": 1}]
    # run again with nothing to do: a no-op report
    again = cli("secrets", "rotate", "--no-new-key").data
    assert again["keyId"] == new_id and again["resealed"] == 0


def test_rotate_with_the_key_in_the_environment(cli: Cli, tmp_path: Path) -> None:
    old, new = (cli("secrets", "keygen").text.strip() for _ in range(2))
    cli("set", "k", '{"pin": 1234}', *CREDS, env={"STATEBOX_SECRET_KEY": old})
    # statebox cannot change the environment: a new key must be put first by hand
    refused = cli("secrets", "rotate", env={"STATEBOX_SECRET_KEY": old})
    refused.failed(2, "STATEBOX_SECRET_KEY", "--no-new-key")
    both = {"STATEBOX_SECRET_KEY": f"{new},{old}"}
    report = cli("secrets", "rotate", "--no-new-key", env=both).data
    assert report["keyId"] == key_id(_key_bytes(new)) and report["resealed"] == 1
    assert report["previousKeyIds"] == [key_id(_key_bytes(old))]
    assert _stored_key_ids(tmp_path / "state.db") == {key_id(_key_bytes(new))}
    only_new = {"STATEBOX_SECRET_KEY": new}
    assert cli("get", "k", *CREDS, "--reveal", env=only_new).data["value"] == {"pin": 1234}


def test_rotate_is_refused_through_a_server(clean_env: dict[str, str]) -> None:
    # no server needs to listen: the remote store is refused before any request
    remote = Cli(clean_env, "http://127.0.0.1:9")
    err = remote("secrets", "rotate").failed(2, "server's host", "store URL")
    assert "key" in err
    json.dumps(err)  # one plain line
