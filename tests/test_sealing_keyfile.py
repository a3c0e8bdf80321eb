"""What a key file must be (issue #16, review round 2): a regular file of the effective
user's, readable by it only, never reached through a symbolic link, in a directory others
cannot write (or with the sticky bit); created under the same lock a rotation takes.
Every refusal is a SecretKeyError (kind ``secret_key``, HTTP 500: the host's
configuration, not the caller's doing)."""

from __future__ import annotations

import base64
import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from statebox.backends.sealing.keyring import (
    KEY_FILE_ENV,
    add_key_to_file,
    load_keyring,
    read_key_file,
    write_key_file,
)
from statebox.core.errors import SecretKeyError

KEY = bytes(range(32))
ROTATED = bytes(range(50, 82))


def _env(path: Path) -> dict[str, str]:
    return {KEY_FILE_ENV: str(path)}


def _refused(path: Path, *words: str) -> SecretKeyError:
    with pytest.raises(SecretKeyError) as caught:
        load_keyring(_env(path), create=True)
    error = caught.value
    assert (error.kind, error.http_status, error.exit_code) == ("secret_key", 500, 1)
    for word in words:
        assert word in str(error), (word, str(error))
    assert base64.urlsafe_b64encode(KEY).decode() not in str(error)
    return error


def test_a_first_seal_waits_for_a_rotation_holding_the_lock(tmp_path: Path) -> None:
    """A first seal racing a first rotation: the seal takes the lock the rotation holds,
    then finds the rotation's key file rather than linking a key of its own (which the
    rotation's replace would have dropped, and with it what the seal sealed)."""
    path = tmp_path / "keys" / "secret.key"
    path.parent.mkdir(mode=0o700)
    lock = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the rotation, between reading and replacing
    rings: list[object] = []
    sealer = threading.Thread(target=lambda: rings.append(load_keyring(_env(path), create=True)))
    sealer.start()
    try:
        time.sleep(0.3)
        assert sealer.is_alive() and not path.exists()  # waiting, nothing linked
        write_key_file(str(path), [ROTATED])
    finally:
        os.close(lock)
    sealer.join(10)
    [ring] = rings
    assert getattr(ring, "keys", None) == (ROTATED,)
    assert read_key_file(str(path)) == (ROTATED,)


def test_a_key_file_reached_through_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    write_key_file(str(real), [KEY])
    link = tmp_path / "secret.key"
    link.symlink_to(real)
    _refused(link, str(link), "symbolic link", KEY_FILE_ENV)
    dangling = tmp_path / "dangling.key"
    dangling.symlink_to(tmp_path / "nowhere")
    _refused(dangling, "symbolic link")  # not created through the link either
    assert not (tmp_path / "nowhere").exists()


def test_a_lock_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    target = tmp_path / "elsewhere"
    Path(f"{path}.lock").symlink_to(target)
    with pytest.raises(SecretKeyError, match="symbolic link"):
        add_key_to_file(str(path), KEY)
    _refused(path, "symbolic link")  # the first seal takes the lock too
    assert not target.exists() and not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    write_key_file(str(path), [KEY])
    assert load_keyring(_env(path), create=False) is not None
    os.chown(path, 4321, -1)
    _refused(path, str(path), "uid 4321", f"uid {os.geteuid()}")


def test_a_key_file_in_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    path = folder / "secret.key"
    write_key_file(str(path), [KEY])
    folder.chmod(0o777)
    _refused(path, str(folder), "777", "sticky")
    folder.chmod(0o1777)  # as /tmp: others cannot replace a file they do not own
    ring = load_keyring(_env(path), create=False)
    assert ring is not None and ring.keys == (KEY,)
    fresh = tmp_path / "open" / "secret.key"
    fresh.parent.mkdir()
    fresh.parent.chmod(0o775)
    _refused(fresh, "775")  # nor is one created there
    assert not fresh.exists()


def test_a_key_file_others_may_read_is_a_secret_key_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    write_key_file(str(path), [KEY])
    path.chmod(0o640)
    _refused(path, "640", "chmod 600")
