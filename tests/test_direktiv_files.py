"""An action's ``files:`` and ``out/`` folders (runner/direktiv/files.py, _tar.py), on a
real SQLite file store and a real temp directory.

Every attack a hostile archive can make is shown refused with *nothing* written: each
attack runs after a harmless ``files:`` entry that would otherwise have been written
first, and the test checks the temp directory (and its parent) is untouched.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statebox import StateStore, open_store
from statebox.runner.direktiv import _tar
from statebox.runner.direktiv.errors import (
    FILES_FAILED,
    FILES_REFUSED,
    VAR_CONFLICT,
    DirektivError,
    VarConflict,
)
from statebox.runner.direktiv.files import (
    collect_out,
    materialize,
    prepare_out,
)
from statebox.runner.direktiv.model import FileSpec
from statebox.runner.direktiv.variables import Variables


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as s:
        yield s


@pytest.fixture
def variables(store: StateStore) -> Variables:
    return Variables(store, workflow="wf", instance_id="i1")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox" / "action"
    path.mkdir(parents=True)
    return path


def put(variables: Variables, key: str, data: bytes, scope: str = "instance") -> None:
    variables.write_raw([(scope, key, data, "application/octet-stream")])


def put_json(variables: Variables, key: str, value: object, scope: str = "instance") -> None:
    variables.write([variables.plan_set(scope, key, value)])


def tree(root: Path) -> dict[str, bytes | None]:
    """Everything under ``root``: relative path → bytes (files) or None (directories)."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = None if path.is_dir() else path.read_bytes()
    return found


def make_tar(
    members: list[tuple[str, bytes | None]],
    *,
    fmt: int = tarfile.PAX_FORMAT,
    gz: bool = False,
) -> bytes:
    """A tar of ``(name, bytes)`` files and ``(name, None)`` directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def special_tar(name: str, kind: bytes, linkname: str = "") -> bytes:
    """A tar holding one member of type ``kind`` (a link, a device, a fifo) after a
    harmless regular file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        info.devmajor, info.devminor = 1, 3
        tar.addfile(info)
    return buffer.getvalue()


def _pax_only(name: str, path: str) -> bytes:
    """A PAX member whose ustar name is harmless and whose PAX ``path`` is not (after a
    harmless regular file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("fine.txt"), io.BytesIO(b""))
        info = tarfile.TarInfo(name)
        info.size = 5
        info.pax_headers = {"path": path}
        tar.addfile(info, io.BytesIO(b"pwned"))
    return buffer.getvalue()


def raw_header(name: str, typeflag: bytes = b"0", size_field: bytes | None = None) -> bytes:
    """One hand-made ustar header (checksum computed)."""
    header = bytearray(512)
    header[0 : len(name)] = name.encode()
    header[100:108] = b"0000644\0"
    header[124:136] = size_field if size_field is not None else b"00000000000\0"
    header[136:148] = b"00000000000\0"
    header[156:157] = typeflag
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


# -- plain and base64 --------------------------------------------------------------------


def test_plain_writes_the_bytes_and_a_json_entry_as_its_text(
    variables: Variables, work: Path
) -> None:
    put(variables, "script", b"#!/bin/sh\necho hi\n")
    put_json(variables, "config", {"a": [1, 2]}, scope="workflow")
    materialize(
        [
            FileSpec("script", permissions=0o755),
            FileSpec("config", scope="workflow", as_="etc/config.json"),
        ],
        variables,
        str(work),
    )
    assert (work / "script").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((work / "script").stat().st_mode) == 0o755
    assert (work / "etc" / "config.json").read_bytes() == b'{"a":[1,2]}'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((work / "etc").stat().st_mode) == 0o750 & ~umask


def test_permissions_keep_only_the_permission_bits(variables: Variables, work: Path) -> None:
    put(variables, "x", b"x")
    materialize([FileSpec("x", permissions=0o4755)], variables, str(work))
    assert stat.S_IMODE((work / "x").stat().st_mode) == 0o755


def test_base64_decodes_a_binary_entry_and_a_json_string(variables: Variables, work: Path) -> None:
    put(variables, "bin", base64.b64encode(b"\x00\x01binary"))
    put_json(variables, "text", base64.b64encode(b"hello").decode())
    materialize(
        [FileSpec("bin", type="base64"), FileSpec("text", type="base64", as_="t")],
        variables,
        str(work),
    )
    assert (work / "bin").read_bytes() == b"\x00\x01binary"
    assert (work / "t").read_bytes() == b"hello"


def test_invalid_base64_fails_and_writes_nothing(variables: Variables, work: Path) -> None:
    put(variables, "good", b"fine")
    put(variables, "bad", b"not base64!!")
    with pytest.raises(DirektivError) as caught:
        materialize([FileSpec("good"), FileSpec("bad", type="base64")], variables, str(work))
    assert caught.value.code == FILES_FAILED
    assert not caught.value.catchable  # a sidecar's file error is internal in Direktiv
    assert "'bad'" in caught.value.message and "base64" in caught.value.message
    assert tree(work) == {}


def test_a_missing_variable_is_an_empty_file_or_directory(variables: Variables, work: Path) -> None:
    materialize(
        [
            FileSpec("nope"),
            FileSpec("nope", type="base64", as_="b"),
            FileSpec("nope", type="tar", as_="t"),
            FileSpec("nope", type="tar.gz", as_="g"),
        ],
        variables,
        str(work),
    )
    assert tree(work) == {"b": b"", "g": None, "nope": b"", "t": None}


# -- tar and tar.gz ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("gz", [False, True])
def test_tar_round_trip(variables: Variables, work: Path, fmt: int, gz: bool) -> None:
    deep = "d/" + "long-directory-name-" * 4 + "/" + "file-name-" * 9 + ".txt"
    members: list[tuple[str, bytes | None]] = [
        ("d", None),
        ("d/a.txt", b"A"),
        ("./d/sub/", None),
        ("d/sub/b.bin", bytes(range(256)) * 3),
        ("notes..txt", b"two dots in a name are fine"),
        (deep, b"deep"),
    ]
    put(variables, "folder", make_tar(members, fmt=fmt, gz=gz))
    materialize(
        [FileSpec("folder", type="tar.gz" if gz else "tar", as_="src", permissions=0o700)],
        variables,
        str(work),
    )
    got = tree(work / "src")
    assert got["d/a.txt"] == b"A"
    assert got["d/sub"] is None
    assert got["d/sub/b.bin"] == bytes(range(256)) * 3
    assert got["notes..txt"] == b"two dots in a name are fine"
    assert got[deep] == b"deep"
    assert stat.S_IMODE((work / "src" / "d" / "a.txt").stat().st_mode) == 0o700


def test_a_leading_slash_is_relative_to_the_target(variables: Variables, work: Path) -> None:
    put(variables, "t", make_tar([("/etc/passwd-copy", b"inside")], fmt=tarfile.GNU_FORMAT))
    materialize([FileSpec("t", type="tar")], variables, str(work))
    assert tree(work) == {"t": None, "t/etc": None, "t/etc/passwd-copy": b"inside"}


def test_a_multi_member_gzip_is_read_whole(variables: Variables, work: Path) -> None:
    stream = make_tar([("a", b"1"), ("b", b"2")])
    split = len(stream) // 2
    data = gzip.compress(stream[:split]) + gzip.compress(stream[split:])
    put(variables, "t", data)
    materialize([FileSpec("t", type="tar.gz")], variables, str(work))
    assert tree(work) == {"t": None, "t/a": b"1", "t/b": b"2"}


# -- attacks: each refused, nothing written ----------------------------------------------

ATTACKS: dict[str, bytes] = {
    "dotdot": make_tar([("fine.txt", b"ok"), ("../escaped.txt", b"pwned")]),
    "dotdot-deep": make_tar([("fine.txt", b"ok"), ("a/b/../../../escaped.txt", b"pwned")]),
    "dotdot-pax-path": make_tar([("fine.txt", b"ok"), ("../" + "x" * 150, b"pwned")]),
    "dotdot-gnu-longname": make_tar(
        [("fine.txt", b"ok"), ("../" + "x" * 150, b"pwned")], fmt=tarfile.GNU_FORMAT
    ),
    "dotdot-pax-only": _pax_only("harmless.txt", "../escaped.txt"),
    "symlink": special_tar("link", tarfile.SYMTYPE, "/etc"),
    "symlink-inside": special_tar("link", tarfile.SYMTYPE, "ok.txt"),
    "hardlink": special_tar("hard", tarfile.LNKTYPE, "/etc/passwd"),
    "char-device": special_tar("null", tarfile.CHRTYPE),
    "block-device": special_tar("disk", tarfile.BLKTYPE),
    "fifo": special_tar("pipe", tarfile.FIFOTYPE),
    "contiguous": special_tar("cont", tarfile.CONTTYPE),
    "base256-size": raw_header("huge", size_field=b"\x80" + bytes(10) + b"\x01") + bytes(1024),
}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_hostile_archive_is_refused_and_nothing_written(
    variables: Variables, work: Path, attack: str, gz: bool
) -> None:
    data = ATTACKS[attack]
    put(variables, "harmless", b"would be written first")
    put(variables, "evil", gzip.compress(data) if gz else data)
    before_parent = tree(work.parent)
    with pytest.raises(DirektivError) as caught:
        materialize(
            [FileSpec("harmless"), FileSpec("evil", type="tar.gz" if gz else "tar")],
            variables,
            str(work),
        )
    assert caught.value.code == FILES_REFUSED, caught.value.message
    assert "'evil'" in caught.value.message
    assert tree(work) == {}
    assert tree(work.parent) == before_parent
    assert not (work.parent / "escaped.txt").exists()


def test_a_gzip_bomb_is_refused_before_it_fills_memory(variables: Variables, work: Path) -> None:
    # 65 MiB of zeros in one member: a few tens of KiB compressed.
    stream = make_tar([("zeros", bytes(_tar.MAX_ARCHIVE_BYTES + 1_048_576))])
    bomb = gzip.compress(stream, compresslevel=9)
    assert len(bomb) < 1_048_576
    put(variables, "bomb", bomb)
    with pytest.raises(DirektivError) as caught:
        materialize([FileSpec("bomb", type="tar.gz")], variables, str(work))
    assert caught.value.code == FILES_REFUSED
    assert "bigger than" in caught.value.message
    assert tree(work) == {}


def test_gunzip_stops_at_its_bound() -> None:
    bomb = gzip.compress(bytes(100_000))
    with pytest.raises(_tar.ArchiveError) as caught:
        _tar.gunzip_bounded(bomb, 1000)
    assert caught.value.refused
    assert _tar.gunzip_bounded(bomb, 100_000) == bytes(100_000)


def test_too_many_members_is_refused(variables: Variables, work: Path) -> None:
    put(variables, "many", make_tar([(f"f{i}", b"") for i in range(20)]))
    with pytest.raises(DirektivError) as caught:
        materialize([FileSpec("many", type="tar")], variables, str(work), max_members=10)
    assert caught.value.code == FILES_REFUSED
    assert tree(work) == {}


def test_files_adding_up_past_the_limit_are_refused(variables: Variables, work: Path) -> None:
    put(variables, "a", b"x" * 600)
    put(variables, "b", b"y" * 600)
    with pytest.raises(DirektivError) as caught:
        materialize([FileSpec("a"), FileSpec("b")], variables, str(work), max_bytes=1000)
    assert caught.value.code == FILES_REFUSED
    assert tree(work) == {}


@pytest.mark.parametrize("name", ["../escaped.txt", "a/../../escaped.txt", "..", "/", "."])
def test_an_as_path_outside_the_temp_directory_is_refused(
    variables: Variables, work: Path, name: str
) -> None:
    put(variables, "x", b"pwned")
    before_parent = tree(work.parent)
    with pytest.raises(DirektivError):
        materialize([FileSpec("x", as_=name)], variables, str(work))
    assert tree(work) == {}
    assert tree(work.parent) == before_parent


def test_a_link_already_in_the_temp_directory_is_not_followed(
    variables: Variables, work: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "link").symlink_to(outside)
    put(variables, "x", b"pwned")
    put(variables, "t", make_tar([("f", b"pwned")]))
    for spec in (FileSpec("x", as_="link/x"), FileSpec("t", type="tar", as_="link")):
        with pytest.raises(DirektivError) as caught:
            materialize([spec], variables, str(work))
        assert caught.value.code == FILES_REFUSED
    (work / "file-link").symlink_to(outside / "target")
    with pytest.raises(DirektivError):
        materialize([FileSpec("x", as_="file-link")], variables, str(work))
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"this is not a tar archive at all" * 20, "not a tar archive"),
        (raw_header("short", size_field=b"00000001000\0") + b"abc", "truncated"),
        (make_tar([("a", b"file"), ("a/b", b"under a file")]), "both"),
        (b"x" * 100, "truncated header"),
    ],
)
def test_an_unreadable_archive_fails_and_writes_nothing(
    variables: Variables, work: Path, data: bytes, problem: str
) -> None:
    put(variables, "ok", b"ok")
    put(variables, "t", data)
    with pytest.raises(DirektivError) as caught:
        materialize([FileSpec("ok"), FileSpec("t", type="tar")], variables, str(work))
    assert caught.value.code == FILES_FAILED
    assert problem in caught.value.message
    assert tree(work) == {}


def test_not_gzip_fails(variables: Variables, work: Path) -> None:
    put(variables, "t", make_tar([("a", b"1")]))
    with pytest.raises(DirektivError) as caught:
        materialize([FileSpec("t", type="tar.gz")], variables, str(work))
    assert caught.value.code == FILES_FAILED
    assert "gzip" in caught.value.message


# -- the reader against tarfile, and against noise ---------------------------------------

_component = st.text(alphabet=st.sampled_from("abcXYZ019_-.é"), min_size=1, max_size=40).filter(
    lambda c: c not in (".", "..")
)
_files = st.dictionaries(
    st.lists(_component, min_size=1, max_size=4).map("/".join),
    st.binary(max_size=700),
    max_size=6,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(files=_files, fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_read_tar_reads_what_tarfile_writes(files: dict[str, bytes], fmt: int) -> None:
    names = set(files)
    # A name that is also another's directory cannot be both in one tree.
    files = {n: d for n, d in files.items() if not any(o.startswith(n + "/") for o in names)}
    members = _tar.read_tar(
        make_tar(list(files.items()), fmt=fmt), max_bytes=1 << 24, max_members=100
    )
    assert {m.name: m.data for m in members} == files
    assert all("/".join(m.parts) == m.name for m in members)


@settings(max_examples=300)
@given(data=st.binary(max_size=3000))
def test_read_tar_on_noise_only_raises_archive_error(data: bytes) -> None:
    with contextlib.suppress(_tar.ArchiveError):
        _tar.read_tar(data, max_bytes=1 << 20, max_members=50)
    with contextlib.suppress(_tar.ArchiveError):
        _tar.gunzip_bounded(data, 1 << 20)


_SAMPLE = make_tar([("dir", None), ("dir/a", b"A" * 600), ("b" * 120, b"B")])


@settings(max_examples=300)
@given(flips=st.lists(st.tuples(st.integers(0, len(_SAMPLE) - 1), st.integers(0, 255)), max_size=8))
def test_read_tar_on_corrupted_archives_only_raises_archive_error(
    flips: list[tuple[int, int]],
) -> None:
    data = bytearray(_SAMPLE)
    for at, value in flips:
        data[at] = value
    try:
        members = _tar.read_tar(bytes(data), max_bytes=1 << 20, max_members=50)
    except _tar.ArchiveError:
        return
    for member in members:
        assert ".." not in member.parts


# -- out/ --------------------------------------------------------------------------------


def _increment_through_files(
    v: Variables, work: Path, before_write: threading.Barrier | None
) -> None:
    """An action's read-modify-write: ``files:`` brings the counter in, the function
    writes it plus one to ``out/workflow/``, the collection writes it back."""
    work.mkdir()
    materialize([FileSpec("count", scope="workflow")], v, str(work))
    count = int((work / "count").read_bytes() or b"0")
    prepare_out(str(work))
    (work / "out" / "workflow" / "count").write_bytes(str(count + 1).encode())
    if before_write is not None:
        before_write.wait(timeout=10)
    v.write_raw(collect_out(str(work)))


def test_files_in_and_out_is_guarded_against_a_concurrent_change(
    tmp_path: Path, store: StateStore
) -> None:
    """Two instances (threads, each with its own store connection) read the counter
    through ``files:`` and write it back through ``out/`` at once: one write lands, the
    other is the catchable ``statebox.var.conflict`` (nothing written) — not a lost
    update, as it was when ``files:`` set no guard."""
    put(Variables(store, workflow="wf", instance_id="seed"), "count", b"0", scope="workflow")
    barrier = threading.Barrier(2)
    outcomes: list[BaseException | None] = [None, None]

    def run(n: int) -> None:
        with open_store(f"sqlite:///{tmp_path / 'state.db'}") as own:
            v = Variables(own, workflow="wf", instance_id=f"i{n}")
            try:
                _increment_through_files(v, tmp_path / f"w{n}", barrier)
            except BaseException as exc:
                outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conflicts = [o for o in outcomes if o is not None]
    assert len(conflicts) == 1, outcomes
    assert isinstance(conflicts[0], VarConflict)
    assert conflicts[0].code == VAR_CONFLICT and conflicts[0].catchable
    check = Variables(store, workflow="wf", instance_id="check")
    assert check.read_raw("workflow", "count") == (b"1", "application/octet-stream")


def test_threads_incrementing_through_files_lose_nothing(tmp_path: Path, store: StateStore) -> None:
    per_thread, errors = 6, list[BaseException]()

    def run(n: int) -> None:
        try:
            with open_store(f"sqlite:///{tmp_path / 'state.db'}") as own:
                v = Variables(own, workflow="wf", instance_id=f"i{n}")
                for i in range(per_thread):
                    attempt = 0
                    while True:
                        attempt += 1
                        try:
                            _increment_through_files(v, tmp_path / f"w{n}-{i}-{attempt}", None)
                            break
                        except VarConflict:
                            continue  # as a retries: codes: [statebox.var.conflict] would
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    check = Variables(store, workflow="wf", instance_id="check")
    assert check.get("workflow", "count") == 4 * per_thread


def test_out_files_and_folders_round_trip(variables: Variables, work: Path) -> None:
    prepare_out(str(work))
    assert tree(work / "out") == {"instance": None, "namespace": None, "workflow": None}
    (work / "out" / "workflow" / "report.json").write_bytes(b'{"ok":true}')
    state = work / "out" / "instance" / "state"
    (state / "sub").mkdir(parents=True)
    (state / "main.tf").write_text("resource {}")
    (state / "sub" / "blob").write_bytes(b"\x00" * 10)
    (state / "empty").mkdir()
    found = collect_out(str(work))
    assert [(s, k, t) for s, k, _, t in found] == [
        ("workflow", "report.json", "application/octet-stream"),
        ("instance", "state", "application/octet-stream"),
    ]
    assert found[0][2] == b'{"ok":true}'
    variables.write_raw(found)
    assert variables.get("workflow", "report.json") == {"ok": True}
    again = work.parent / "again"
    again.mkdir()
    materialize([FileSpec("state", type="tar.gz", as_="st")], variables, str(again))
    assert tree(again / "st") == {
        "empty": None,
        "main.tf": b"resource {}",
        "sub": None,
        "sub/blob": b"\x00" * 10,
    }


def test_out_skips_links_and_fifos(work: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    prepare_out(str(work))
    inst = work / "out" / "instance"
    (inst / "leak").symlink_to(secret)
    (inst / "leakdir").symlink_to(tmp_path)
    os.mkfifo(inst / "pipe")  # opening it for reading would block forever
    folder = inst / "folder"
    folder.mkdir()
    (folder / "real").write_text("real")
    (folder / "leak").symlink_to(secret)
    (folder / "leakdir").symlink_to(tmp_path)
    os.mkfifo(folder / "pipe")
    found = collect_out(str(work))
    assert [k for _, k, _, _ in found] == ["folder"]
    with tarfile.open(fileobj=io.BytesIO(found[0][2]), mode="r:gz") as tar:
        assert tar.getnames() == ["real"]
        assert b"host secret" not in gzip.decompress(found[0][2])


def test_an_out_folder_replaced_by_a_link_is_not_read(work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    prepare_out(str(work))
    os.rmdir(work / "out" / "namespace")
    (work / "out" / "namespace").symlink_to(outside)
    assert collect_out(str(work)) == []


@pytest.mark.parametrize("name", [".hidden", "has space", "-dash", "end.", "abc\n"])
def test_an_out_name_that_is_not_a_variable_name_fails(work: Path, name: str) -> None:
    prepare_out(str(work))
    (work / "out" / "instance" / name).write_text("x")
    with pytest.raises(DirektivError) as caught:
        collect_out(str(work))
    assert caught.value.code == FILES_FAILED
    assert name in caught.value.message


def test_out_is_size_bounded(work: Path) -> None:
    prepare_out(str(work))
    (work / "out" / "instance" / "a").write_bytes(b"x" * 600)
    (work / "out" / "workflow" / "b").write_bytes(b"y" * 600)
    with pytest.raises(DirektivError) as caught:
        collect_out(str(work), max_bytes=1000)
    assert caught.value.code == FILES_REFUSED
    folder = work / "out" / "namespace" / "d"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}").write_bytes(b"z" * 300)
    (work / "out" / "instance" / "a").unlink()
    (work / "out" / "workflow" / "b").unlink()
    with pytest.raises(DirektivError) as caught:
        collect_out(str(work), max_bytes=1000)
    assert caught.value.code == FILES_REFUSED
    with pytest.raises(DirektivError):
        collect_out(str(work), max_members=3)
    assert len(collect_out(str(work))) == 1
