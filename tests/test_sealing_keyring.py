"""The secret keys (statebox.backends.sealing.keyring, issue #16): their format, where they
come from, and the key file: created on the first seal only, mode 0600 from the start,
one key when several processes create it at once, picked up again when replaced."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statebox.backends.sealing.keyring import (
    KEY_ENV,
    KEY_FILE_ENV,
    Keyring,
    add_key_to_file,
    decode_key,
    generate_key,
    key_file_path,
    key_id,
    load_keyring,
    read_key_file,
    write_key_file,
)
from statebox.config import statebox_home
from statebox.core.errors import SecretKeyError


def _key(n: int) -> bytes:
    return bytes([n]) * 32


def _text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_generated_key_is_32_random_bytes_in_url_safe_base64() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for text in keys:
        assert len(text) == 44 and text.endswith("=")
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
        assert len(base64.urlsafe_b64decode(text)) == 32
        assert decode_key(text, "test") == base64.urlsafe_b64decode(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        _text(_key(1))[:-1],  # no padding
        _text(bytes(31)),
        _text(bytes(33)),
        base64.b64encode(b"\xfb" * 32).decode(),  # standard alphabet: "+" and "/"
        _text(_key(1))[:-2] + "B=",  # non-canonical final bits
        "é" * 44,
    ],
)
def test_a_malformed_key_is_refused_without_showing_it(text: str) -> None:
    with pytest.raises(SecretKeyError) as caught:
        decode_key(text, "STATEBOX_SECRET_KEY")
    message = str(caught.value)
    assert "malformed secret key in STATEBOX_SECRET_KEY" in message
    assert "keygen" in message
    if len(text) > 8:
        assert text not in message and text[:10] not in message
    assert caught.value.kind == "secret_key" and caught.value.exit_code == 1


def test_a_key_id_is_16_hex_of_a_labelled_sha256() -> None:
    key = _key(7)
    assert key_id(key) == hashlib.sha256(b"statebox key id\0" + key).hexdigest()[:16]
    assert key_id(key) != key_id(_key(8))
    ring = Keyring((_key(1), _key(2)), "test")
    assert ring.primary == _key(1) and ring.primary_id == key_id(_key(1))
    assert ring.key_ids == (key_id(_key(1)), key_id(_key(2)))
    assert ring.by_id(key_id(_key(2))) == _key(2) and ring.by_id("0" * 16) is None
    assert _text(_key(1)) not in repr(ring) and key_id(_key(1)) in repr(ring)
    with pytest.raises(SecretKeyError, match="no secret key"):
        Keyring((), "nowhere")


def test_the_variable_holds_one_key_or_several_the_first_sealing() -> None:
    one = load_keyring({KEY_ENV: _text(_key(1))}, create=False)
    assert one is not None and one.keys == (_key(1),) and one.source == KEY_ENV
    several = load_keyring({KEY_ENV: f" {_text(_key(2))},{_text(_key(1))}\n"}, create=True)
    assert several is not None and several.keys == (_key(2), _key(1))
    spaced = load_keyring({KEY_ENV: f"{_text(_key(2))} {_text(_key(1))}"}, create=False)
    assert spaced is not None and spaced.keys == (_key(2), _key(1))
    with pytest.raises(SecretKeyError, match=r"STATEBOX_SECRET_KEY \(key 2 of 2\)"):
        load_keyring({KEY_ENV: f"{_text(_key(1))},nope"}, create=False)


def test_the_variable_wins_over_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_key_file(str(path), [_key(3)])
    ring = load_keyring({KEY_ENV: _text(_key(1)), KEY_FILE_ENV: str(path)}, create=True)
    assert ring is not None and ring.keys == (_key(1),)


def test_the_key_file_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert key_file_path({KEY_FILE_ENV: str(tmp_path / "x.key")}) == str(tmp_path / "x.key")
    assert key_file_path({"STATEBOX_HOME": str(tmp_path)}) == str(tmp_path / "secret.key")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for env in (
        {"STATEBOX_HOME": str(tmp_path / "h")},
        {"XDG_DATA_HOME": str(tmp_path / "xdg")},
        {"STATEBOX_HOME": "~/rel"},
        {},
    ):
        # the engine's statebox_home, which this layer may not import, says the same
        assert key_file_path(env) == str(statebox_home(env) / "secret.key")


def test_a_read_never_creates_the_key_file(tmp_path: Path) -> None:
    env = {"STATEBOX_HOME": str(tmp_path / "home")}
    assert load_keyring(env, create=False) is None
    assert not (tmp_path / "home").exists()


def test_the_first_seal_creates_the_key_file_0600(tmp_path: Path) -> None:
    env = {"STATEBOX_HOME": str(tmp_path / "home")}
    old = os.umask(0)  # the widest umask: the file is 0600 all the same
    try:
        ring = load_keyring(env, create=True)
    finally:
        os.umask(old)
    path = tmp_path / "home" / "secret.key"
    assert ring is not None and ring.source == f"the key file {path}"
    assert _mode(path) == 0o600
    assert path.read_text() == _text(ring.primary) + "\n"
    # no temporary file left; the lock the creation took (as a rotation does) stays
    assert sorted(os.listdir(path.parent)) == ["secret.key", "secret.key.lock"]
    again = load_keyring(env, create=True)
    assert again is not None and again.keys == ring.keys
    assert load_keyring(env, create=False) is again  # unchanged file: not read again


def test_the_key_file_is_complete_and_private_before_it_has_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is linked to its name only once written and synced, mode 0600: no
    moment shows a half-written or group-readable key file."""
    seen: list[tuple[int, bytes]] = []
    real_link = os.link

    def link(src: str, dst: str) -> None:
        seen.append((stat.S_IMODE(os.stat(src).st_mode), Path(src).read_bytes()))
        assert not os.path.exists(dst)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    ring = load_keyring({KEY_FILE_ENV: str(tmp_path / "k")}, create=True)
    assert ring is not None
    assert seen == [(0o600, (_text(ring.primary) + "\n").encode())]


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_key_file(str(path), [_key(1)])
    env = {KEY_FILE_ENV: str(path)}
    assert load_keyring(env, create=False) is not None
    path.chmod(0o640)
    with pytest.raises(SecretKeyError) as caught:
        load_keyring(env, create=True)  # refused even though the file is known already
    assert str(path) in str(caught.value) and "640" in str(caught.value)
    assert "chmod 600" in str(caught.value)
    path.chmod(0o604)
    with pytest.raises(SecretKeyError, match="604"):
        read_key_file(str(path))


def test_a_key_file_holds_keys_a_line_with_blank_lines_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text(f"# rotated 2026-01-01\n\n{_text(_key(2))}\n  {_text(_key(1))}  \n")
    path.chmod(0o600)
    ring = load_keyring({KEY_FILE_ENV: str(path)}, create=False)
    assert ring is not None and ring.keys == (_key(2), _key(1))
    path.write_text(f"{_text(_key(2))}\nnot-a-key\n")
    with pytest.raises(SecretKeyError, match=f"line 2 of the key file {path}"):
        read_key_file(str(path))
    path.write_text("# nothing\n")
    with pytest.raises(SecretKeyError, match="holds no key"):
        read_key_file(str(path))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(SecretKeyError, match="not ASCII"):
        read_key_file(str(path))


def test_a_replaced_key_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "k"
    env = {KEY_FILE_ENV: str(path)}
    write_key_file(str(path), [_key(1)])
    first = load_keyring(env, create=False)
    assert first is not None and first.keys == (_key(1),)
    write_key_file(str(path), [_key(2), _key(1)])  # a rotation, by another process
    second = load_keyring(env, create=False)
    assert second is not None and second.keys == (_key(2), _key(1))
    assert _mode(path) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_adding_a_key_puts_it_first_and_keeps_the_others(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "k")
    assert add_key_to_file(path, _key(1)) == (_key(1),)  # created when missing
    assert add_key_to_file(path, _key(2)) == (_key(2), _key(1))
    assert add_key_to_file(path, _key(1)) == (_key(1), _key(2))  # never twice
    assert read_key_file(path) == (_key(1), _key(2))
    assert _mode(Path(path)) == 0o600


_CREATE = """
import os, sys, time
from statebox.backends.sealing.keyring import load_keyring
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.0005)
ring = load_keyring({"STATEBOX_SECRET_KEY_FILE": sys.argv[2]}, create=True)
print(ring.primary_id)
"""


def test_processes_creating_the_key_file_at_once_end_with_one_key(tmp_path: Path) -> None:
    for round_ in range(3):
        path = tmp_path / f"round{round_}" / "secret.key"
        go = tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CREATE, str(go), str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        time.sleep(0.5)  # all waiting for the start
        go.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        ids = {out.strip() for out, _ in outputs}
        assert len(ids) == 1
        assert len(read_key_file(str(path))) == 1
        assert ids == {key_id(read_key_file(str(path))[0])}
        assert sorted(os.listdir(path.parent)) == ["secret.key", "secret.key.lock"]
