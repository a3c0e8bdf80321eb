"""statebox.transfer and ``statebox dump | load | copy | backup`` (issue 19, "Move and
back up"): the dump line codec, dump/load/copy on real stores, resuming, conflicts,
secret keyspaces, the progress bar on a terminal only, and backup's refusal of other
stores. The 10,000-key round trip is tests/test_copy_roundtrip.py; backup under writers
tests/test_backup.py."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statebox import InvalidRequestError, open_store
from statebox.backends.sealing.backend import SEALED_CONTENT_TYPE
from statebox.core.model import Keyspace, UpdatedBy
from statebox.core.records import Entry, HistoryRecord
from statebox.core.values import Blob, RawJSON, normalize, sha256_hex
from statebox.transfer import (
    HEADER,
    DumpRecord,
    copy_store,
    decode_line,
    dump_records,
    encode_line,
    load_records,
)

from .backends import new_secret_key
from .test_cli import environment_without_context
from .transfer_support import TerminalRun, run_cli, state_of

# --- the line codec ------------------------------------------------------------------------

_NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z")
_STRING = st.text().map(lambda s: json.dumps(s, ensure_ascii=False))
_JSON_TEXT = st.recursive(
    st.one_of(_NUMBER, _STRING, st.sampled_from(["true", "false", "null"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(_STRING, inner), max_size=4).map(
            lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=12,
)
# A value as a store keeps it: normalized JSON text, or any bytes of another content type.
_VALUE = st.one_of(
    _JSON_TEXT.map(lambda t: (normalize(RawJSON(t)).data, "application/json")),
    st.tuples(st.binary(max_size=64), st.sampled_from(["text/plain", "x/y"])),
)
_TIME = st.integers(0, 2**63 - 1)
_BY = st.builds(UpdatedBy, st.text(max_size=8), st.text(max_size=8), st.text(max_size=8))


@st.composite
def _records(draw: st.DrawFn) -> DumpRecord:
    key = draw(st.text(min_size=1, max_size=20))
    secret = draw(st.booleans())

    def digest(data: bytes) -> str:  # a secret keyspace's hashes are keyed: any text
        return draw(st.text(max_size=64)) if secret else sha256_hex(data)

    current = None
    if draw(st.booleans()):
        data, ctype = draw(_VALUE)
        expires = draw(st.one_of(st.none(), _TIME))
        current = Entry(
            key, draw(st.integers(1, 10**12)), digest(data), data, ctype,
            draw(_TIME), draw(_TIME), draw(_BY), expires,
        )  # fmt: skip
    history = []
    for _ in range(draw(st.integers(0, 4))):
        deleted = draw(st.booleans())
        data, ctype = (b"", "application/json") if deleted else draw(_VALUE)
        history.append(
            HistoryRecord(
                key,
                draw(st.integers(1, 10**6)),
                draw(st.text(max_size=64)) if deleted else digest(data),
                data,
                ctype,
                draw(_TIME),
                draw(_TIME),
                draw(_BY),
                deleted,
            )
        )
    return DumpRecord(
        draw(st.text(min_size=1, max_size=10)),
        draw(st.text(min_size=1, max_size=10)),
        key,
        current,
        tuple(history),
        secret,
    )


@settings(max_examples=400, deadline=None)
@given(_records())
def test_a_line_decodes_to_the_record_it_encodes(record: DumpRecord) -> None:
    line = encode_line(record)
    assert "\n" not in line and "\r" not in line
    assert decode_line(line) == record


@pytest.mark.parametrize(
    "text",
    ["1.50", "-0", "1e400", "123456789012345678901234567890", "9" * 5000, '{"b":1,"a":"\u00e9"}'],
)
def test_a_json_value_is_written_as_its_exact_text(text: str) -> None:
    value = normalize(RawJSON(text))
    entry = Entry("k", 1, value.hash, value.data, "application/json", 1, 2)
    line = encode_line(DumpRecord("global", "_", "k", entry))
    assert f'"value":{value.data.decode()}' in line  # no number went through a float
    assert decode_line(line).current == entry


def test_other_bytes_are_base64() -> None:
    data = b"\x00\xff"
    entry = Entry("k", 1, sha256_hex(data), data, "application/octet-stream", 1, 2)
    line = encode_line(DumpRecord("global", "_", "k", entry))
    assert f'"value":"{base64.b64encode(data).decode()}"' in line
    assert '"encoding":"base64"' in line
    assert decode_line(line).current == entry


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"scope":"global"}', 'it needs "scope" and "namespace" strings'),
        ("[1]", "not an object"),
        ('{"scope":"global","namespace":"_","key":"k","current":{', "is not a statebox dump"),
        ('{"scope":"global","namespace":"_","key":"k","extra":1}', "unknown field 'extra'"),
        (
            '{"scope":"global","namespace":"_","key":"k","current":{"key":"k","version":1,'
            '"hash":"0","contentType":"application/json","createdAt":"2026-01-01T00:00:00Z",'
            '"updatedAt":"2026-01-01T00:00:00Z","value":1}}',
            "does not match its hash",
        ),
    ],
)
def test_a_line_that_is_not_a_record_names_where(line: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"^line 7 of x\.jsonl") as caught:
        decode_line(line, "line 7 of x.jsonl")
    assert problem in str(caught.value)


# --- dump, load, copy on real stores ---------------------------------------------------------


def _fill(url: str) -> None:
    with open_store(url) as store:
        store.set("n", RawJSON('{"price": 1.50, "big": 123456789012345678901234567890}'),
                  scope="global")  # fmt: skip
        store.set("n", RawJSON('{"price": 2.50}'), scope="global")
        store.set("é/ключ", "unicode", scope="custom", namespace="ns")
        store.set("blob", Blob(b"\x00\x01\xfe", "application/x-thing"), scope="custom",
                  namespace="ns")  # fmt: skip
        store.set("gone", 1, scope="custom", namespace="ns")
        store.delete("gone", scope="custom", namespace="ns")
        store.set("back", 1, scope="dag", namespace="d")
        store.delete("back", scope="dag", namespace="d")
        store.set("back", 2, scope="dag", namespace="d", ttl=3600)


@pytest.fixture
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return environment_without_context(tmp_path_factory)


def test_dump_then_load_keeps_versions_hashes_times_and_exact_numbers(
    tmp_path: Path, env: dict[str, str]
) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    _fill(a)
    dumped = run_cli("dump", "--history", "--store", a, env=env)
    assert dumped.returncode == 0, dumped.stderr
    lines = dumped.stdout.decode().splitlines()
    assert lines[0] == HEADER
    assert '"value":{"price":2.50}' in dumped.stdout.decode()  # the stored text, exactly
    loaded = run_cli("load", "--store", b, env=env, stdin=dumped.stdout)
    assert loaded.returncode == 0, loaded.stderr
    summary = json.loads(loaded.stdout)
    assert summary == {"operation": "load", "records": 4, "created": 4, "same": 0,
                       "replaced": 0, "conflicts": []}  # fmt: skip
    with open_store(a) as src, open_store(b) as dst:
        assert state_of(src) == state_of(dst)
        assert dst.get("n", scope="global").stored.data == b'{"price":2.50}'  # type: ignore[union-attr]
        assert [h.deleted for h in dst.history("back", scope="dag", namespace="d").versions] == [
            False, True, False,
        ]  # fmt: skip
    # A key with history only (deleted) is found by no backend call: not dumped.
    assert "gone" not in dumped.stdout.decode()
    again = run_cli("load", "--store", b, env=env, stdin=dumped.stdout)
    assert json.loads(again.stdout)["same"] == 4 and again.returncode == 0


def test_load_reports_conflicts_with_exit_4_and_replace_overwrites(
    tmp_path: Path, env: dict[str, str]
) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    _fill(a)
    dump = tmp_path / "d.jsonl"
    assert (
        run_cli("dump", "--history", "--output", str(dump), "--store", a, env=env).returncode == 0
    )
    with open_store(b) as dst:
        dst.set("n", "theirs", scope="global")
    done = run_cli("load", str(dump), "--store", b, env=env)
    assert done.returncode == 4
    summary = json.loads(done.stdout)
    assert summary["created"] == 3 and summary["conflicts"] == [
        {"scope": "global", "namespace": "_", "key": "n", "version": 2, "existingVersion": 1}
    ]
    assert b"--replace overwrites them" in done.stderr
    with open_store(b) as dst:
        assert dst.get("n", scope="global").stored.data == b'"theirs"'  # type: ignore[union-attr]
    replaced = run_cli("load", str(dump), "--replace", "--store", b, env=env)
    assert replaced.returncode == 0
    assert json.loads(replaced.stdout)["replaced"] == 1
    with open_store(a) as src, open_store(b) as dst:
        assert state_of(src) == state_of(dst)


def test_dump_resume_continues_after_the_last_complete_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with open_store(url) as store:
        for ns in range(3):
            store.transaction(
                [{"op": "set", "key": f"k{i:04}", "value": i} for i in range(1200)],
                scope="custom", namespace=f"n{ns}",
            )  # fmt: skip
    whole = tmp_path / "whole.jsonl"
    assert (
        run_cli("dump", "--history", "--output", str(whole), "--store", url, env=env).returncode
        == 0
    )
    data = whole.read_bytes()
    assert data.count(b"\n") == 3601
    for cut in (len(data) // 2, data.index(b"\n") + 1, data.index(b"\n") - 3, 5, 0):
        part = tmp_path / f"part{cut}.jsonl"
        part.write_bytes(data[:cut])  # torn inside a line (or the header), or empty
        done = run_cli("dump", "--history", "--output", str(part), "--resume", "--store", url,
                       env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert part.read_bytes() == data, cut
    assert (whole.stat().st_mode & 0o777) == 0o600
    refused = run_cli("dump", "--resume", "--store", url, env=env)
    assert refused.returncode == 2 and b"--output" in refused.stderr


def test_secret_keyspaces_skipped_unless_included_and_sealed_where_copied(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_secret_key()
    monkeypatch.setenv("STATEBOX_SECRET_KEY", key)
    env = {**env, "STATEBOX_SECRET_KEY": key}
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with open_store(a) as store:
        store.declare_secret_keyspace("custom", "vault")
        store.set("token", "s3cret-value", scope="custom", namespace="vault")
        store.set("plain", 1, scope="global")
    plain = run_cli("dump", "--store", a, env=env)
    assert b"s3cret" not in plain.stdout and b"vault" not in plain.stdout
    assert b"skipped secret keyspace custom/vault" in plain.stderr
    assert b"secret-keyspaces" not in plain.stdout  # the registry is never dumped
    included = run_cli("dump", "--include-secrets", "--store", a, env=env)
    assert b'"value":"s3cret-value"' in included.stdout  # below the masking
    assert b'"secret":true' in included.stdout and b"in the clear" in included.stderr
    done = run_cli("copy", "--from", a, "--to", b, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verification"]["ok"] is True
    with open_store(b) as dst:
        assert dst.secret_policy.is_secret(Keyspace("custom", "vault"))
        raw = dst.backend.inner.get(Keyspace("custom", "vault"), "token", 0)  # type: ignore[attr-defined]
        assert raw.content_type == SEALED_CONTENT_TYPE and b"s3cret" not in raw.data
        assert dst.get("token", scope="custom", namespace="vault").stored.data == b'"s3cret-value"'  # type: ignore[union-attr]


def test_copy_verifies_and_names_the_first_differing_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"file://{tmp_path / 'b'}"
    _fill(a)
    first = run_cli("copy", "--from", a, "--to", b, env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["created"] == 4
    assert summary["verification"] == {"ok": True, "keyspaces": 3, "entries": 4,
                                       "versions": 7, "difference": None}  # fmt: skip
    assert first.stderr == b""  # not a terminal: no progress bar
    again = json.loads(run_cli("copy", "--from", a, "--to", b, env=env).stdout)
    assert again["same"] == 4 and again["created"] == 0
    with open_store(b) as dst:
        dst.set("extra", 1, scope="custom", namespace="ns")
    differs = run_cli("copy", "--from", a, "--to", b, env=env)
    assert differs.returncode == 1
    assert "custom/ns key 'extra' is missing at the source" in differs.stderr.decode()


def test_load_records_in_batches_reports_progress(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as src, open_store("memory://") as dst:
        src.transaction([{"op": "set", "key": f"k{i}", "value": i} for i in range(450)],
                        scope="global")  # fmt: skip
        steps: list[int] = []
        report = load_records(dst, dump_records(src), batch=200, progress=steps.append)
        assert steps == [200, 200, 50] and report.created == 450
        # Loaded without history: the same entries, but the histories differ.
        verification = copy_store(src, dst).verification
        assert verification.difference == (
            "global/_ key 'k0': the source has version 1, hash 5feceb66ffc8… and 1 history "
            "records, the destination version 1, hash 5feceb66ffc8… and 0 history records"
        )
        assert copy_store(src, dst, history=False).verification.ok


def test_progress_bar_only_on_a_terminal(tmp_path: Path, env: dict[str, str]) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with open_store(a) as store:
        for ns in range(4):
            store.transaction([{"op": "set", "key": f"k{i}", "value": i} for i in range(1000)],
                              scope="custom", namespace=f"n{ns}")  # fmt: skip
    run = TerminalRun("copy", "--from", a, "--to", b, env=env)
    code, out, shown = run.finish()
    assert code == 0 and json.loads(out)["created"] == 4000
    assert "4000/4000" in shown or "4,000/4,000" in shown
    assert re.search(r"[\d,]+ keys/s", shown), shown  # the rate
    assert "ETA" in shown and re.search(r"\d+:\d\d:\d\d", shown)  # the time left
    piped = run_cli("copy", "--from", a, "--to", b, env=env)
    assert piped.returncode == 0 and piped.stderr == b""


def test_backup_refuses_other_stores_naming_the_way(tmp_path: Path, env: dict[str, str]) -> None:
    done = run_cli("backup", str(tmp_path / "x.db"), "--store", f"file://{tmp_path / 'f'}", env=env)
    assert done.returncode == 2
    assert b"statebox copy --from URL --to sqlite:///PATH" in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_backup_refusing_a_postgres_store_does_not_show_its_password(
    tmp_path: Path, env: dict[str, str], pg_server: str
) -> None:
    parts = urlsplit(pg_server)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    url = urlunsplit(parts._replace(netloc=f"{user}:sekrit-pw@{host}"))  # trust auth
    done = run_cli("backup", str(tmp_path / "x.db"), "--store", url, env=env)
    assert done.returncode == 2, done.stderr
    assert b"pg_dump" in done.stderr and b"***" in done.stderr
    assert b"sekrit-pw" not in done.stderr


def test_backup_of_a_sqlite_store(tmp_path: Path, env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    _fill(url)
    done = run_cli("backup", str(tmp_path / "copy.db"), "--store", url, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["entries"] == 4 and summary["integrity"] == "ok"
    assert summary["bytes"] == os.path.getsize(tmp_path / "copy.db")
    assert not (tmp_path / "copy.db.tmp").exists()
    with open_store(url) as src, open_store(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        assert state_of(src) == state_of(copy)


def test_verify_names_a_key_whose_value_differs_at_the_same_version(tmp_path: Path) -> None:
    from statebox.transfer import verify_copy

    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as a, open_store("memory://") as b:
        a.set("k", 1, scope="global")
        b.set("k", 2, scope="global")  # version 1 too
        verification = verify_copy(a, b, history=False)
        assert not verification.ok
        assert verification.difference is not None
        assert verification.difference.startswith("global/_ key 'k': the source has version 1")
