"""The secret keys: where they come from, how a key file is made and replaced.

A key is 32 random bytes written as URL-safe base64 with padding (44 characters). The
keys come from ``STATEBOX_SECRET_KEY`` (one key, or several separated by commas or
whitespace), else from a key file: ``STATEBOX_SECRET_KEY_FILE``, else
``$STATEBOX_HOME/secret.key``, one key a line (blank lines and ``#`` comments are
skipped). The first key seals; every key opens, so old values stay readable after a
rotation adds a new first key.

The key file is created on the first seal, never on a read: under the lock
``<keyfile>.lock`` (the one a rotation takes to add a key, so a first seal cannot replace
a key a first rotation just wrote), a temporary file made with mode 0600 (``O_EXCL``) is
written, synced and linked to the final name, so the name never shows a half-written or
group-readable file, and of several processes creating it at once exactly one key wins
(the others read it). Refused, as :class:`SecretKeyError` (a misconfigured host: HTTP
500, not the client's doing): a key file readable by others, one owned by another user
than the effective one, a symbolic link (the file and its lock are opened with
``O_NOFOLLOW``), and one in a directory others may write without the sticky bit (they
could replace it). Running writers notice a replaced key file (its inode, mtime and
size) on their next sealed operation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ...core.errors import SecretKeyError
from ._keyfile import KEY_FILE_ENV, check_directory, check_file, locked, open_no_follow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "Keyring",
    "add_key_to_file",
    "decode_key",
    "encode_key",
    "generate_key",
    "key_file_path",
    "key_id",
    "keyring_source",
    "load_keyring",
    "read_key_file",
    "write_key_file",
]

KEY_ENV: Final = "STATEBOX_SECRET_KEY"
KEY_BYTES: Final = 32


def encode_key(key: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(key).decode("ascii")


def generate_key() -> str:
    """A new key: 32 bytes from the operating system's CSPRNG, as URL-safe base64."""
    return encode_key(os.urandom(KEY_BYTES))


def decode_key(text: str, where: str) -> bytes:
    """The 32 bytes ``text`` encodes, or SecretKeyError naming ``where`` (never the text:
    a malformed key may still be most of a real one)."""
    import base64
    import binascii

    cleaned = text.strip()
    try:
        if len(cleaned) != 44:
            raise ValueError
        key = base64.urlsafe_b64decode(cleaned.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        key = b""
    if len(key) != KEY_BYTES or encode_key(key) != cleaned:
        raise SecretKeyError(
            f"malformed secret key in {where}: a key is 32 bytes written as URL-safe base64, "
            "44 characters (statebox secrets keygen prints one)"
        )
    return key


def key_id(key: bytes) -> str:
    """The key's public name: 16 hex characters of SHA-256 over a label and the key."""
    import hashlib

    return hashlib.sha256(b"statebox key id\0" + key).hexdigest()[:16]


class Keyring:
    """The keys, the first one (``primary``) sealing, and where they came from."""

    __slots__ = ("_by_id", "keys", "primary", "primary_id", "source")

    def __init__(self, keys: tuple[bytes, ...], source: str) -> None:
        if not keys:
            raise SecretKeyError(f"no secret key in {source}")
        self.keys = keys
        self.source = source
        self.primary = keys[0]
        self._by_id = {key_id(k): k for k in reversed(keys)}  # the first of a repeated key
        self.primary_id = key_id(self.primary)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.keys)

    def by_id(self, kid: str) -> bytes | None:
        return self._by_id.get(kid)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(ids={list(self.key_ids)!r}, source={self.source!r})"


def _home(env: Mapping[str, str]) -> str:
    # statebox.config.statebox_home, which this layer may not import (the import
    # contracts put config above the backends); tests check that the two agree.
    if env.get("STATEBOX_HOME"):
        return os.path.expanduser(env["STATEBOX_HOME"])
    data_home = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(os.path.expanduser(data_home), "statebox")


def key_file_path(environ: Mapping[str, str] | None = None) -> str:
    """``STATEBOX_SECRET_KEY_FILE``, else ``$STATEBOX_HOME/secret.key``."""
    env = os.environ if environ is None else environ
    explicit = env.get(KEY_FILE_ENV, "").strip()
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    return os.path.abspath(os.path.join(_home(env), "secret.key"))


def _parse_keys(text: str, path: str) -> tuple[bytes, ...]:
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keys.append(decode_key(stripped, f"line {number} of the key file {path}"))
    if not keys:
        raise SecretKeyError(f"the key file {path} holds no key")
    return tuple(keys)


def _read(path: str) -> tuple[tuple[bytes, ...], tuple[int, int, int]]:
    """The keys in the file at ``path`` and the identity (inode, mtime, size) of the file
    they were read from; FileNotFoundError when there is none."""
    try:
        fd = open_no_follow(path, os.O_RDONLY, f"set {KEY_FILE_ENV} to the file it points to")
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            check_file(path, st)
            check_directory(path)
            raw = handle.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {exc.strerror}") from exc
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SecretKeyError(f"the key file {path} is not a key file (not ASCII)") from None
    return _parse_keys(text, path), (st.st_ino, st.st_mtime_ns, st.st_size)


def read_key_file(path: str) -> tuple[bytes, ...]:
    """The keys in the file at ``path``, first = primary (refused: readable by others;
    FileNotFoundError when there is no such file)."""
    return _read(path)[0]


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # a platform without directory handles: the rename is all there is
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(path: str, keys: Sequence[bytes]) -> str:
    """A synced temporary file next to ``path``, mode 0600 from its creation."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(6).hex()}")
    # O_EXCL: a name nobody else holds; 0600 before a byte is written (umask only narrows)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, "".join(encode_key(k) + "\n" for k in keys).encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def write_key_file(path: str, keys: Sequence[bytes]) -> None:
    """Replace the key file at ``path`` with ``keys`` atomically (rename), mode 0600."""
    try:
        temp = _write_temp(path, keys)
        try:
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
        _sync_directory(os.path.dirname(path))
    except OSError as exc:
        raise SecretKeyError(f"cannot write the key file {path}: {exc.strerror}") from exc


def _create_key_file(path: str) -> None:
    """Create the key file with one new key, or read the one another process created
    first: the link fails when the name exists, so exactly one key wins. Under the key
    file's lock, as :func:`add_key_to_file`: a first seal racing a first rotation never
    replaces the key the rotation wrote."""
    with locked(path, "create"):
        if os.path.lexists(path):
            return  # created meanwhile (or a link, refused when read)
        try:
            temp = _write_temp(path, [os.urandom(KEY_BYTES)])
        except OSError as exc:
            raise SecretKeyError(f"cannot create the key file {path}: {exc.strerror}") from exc
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won (without the lock: an older statebox): its key it is
        except OSError as exc:
            raise SecretKeyError(f"cannot create the key file {path}: {exc.strerror}") from exc
        else:
            _sync_directory(os.path.dirname(path))
        finally:
            os.unlink(temp)


def add_key_to_file(path: str, key: bytes) -> tuple[bytes, ...]:
    """Put ``key`` first in the key file (created when missing), keeping the others, under
    an exclusive lock so two rotations at once do not drop each other's key."""
    with locked(path, "lock"):
        try:
            old = read_key_file(path)
        except FileNotFoundError:
            old = ()
        keys = (key, *(k for k in old if k != key))
        write_key_file(path, keys)
        _forget(path)
        return keys


# The file keyring last read, by path, with the stat that identified it: a replaced
# file (rotation) has another inode, mtime or size, and is read again.
_files: dict[str, tuple[tuple[int, int, int], Keyring]] = {}
_envs: dict[str, Keyring] = {}


def _forget(path: str) -> None:
    _files.pop(path, None)


def _from_env(raw: str) -> Keyring:
    ring = _envs.get(raw)
    if ring is None:
        parts = raw.replace(",", " ").split()
        keys = tuple(
            decode_key(part, f"{KEY_ENV} (key {n} of {len(parts)})")
            for n, part in enumerate(parts, 1)
        )
        ring = Keyring(keys, KEY_ENV)
        _envs.clear()  # one value at a time in practice; never grows
        _envs[raw] = ring
    return ring


def load_keyring(environ: Mapping[str, str] | None = None, *, create: bool) -> Keyring | None:
    """The keyring: from ``STATEBOX_SECRET_KEY`` when set, else the key file. A missing
    key file is created when ``create`` (sealing), else the answer is ``None``."""
    env = os.environ if environ is None else environ
    raw = env.get(KEY_ENV, "")
    if raw.strip():
        return _from_env(raw)
    path = key_file_path(env)
    cached = _files.get(path)
    if cached is not None:
        # One stat per sealed operation: a rotation replaced the file (another inode,
        # mtime or size), or a chmod made it readable by others (refused again).
        try:
            st = os.lstat(path)  # a link put in its place is read again: refused
        except OSError:
            st = None
        if st is not None and cached[0] == (st.st_ino, st.st_mtime_ns, st.st_size):
            check_file(path, st)
            return cached[1]
    try:
        keys, signature = _read(path)
    except FileNotFoundError:
        _forget(path)
        if not create:
            return None
        _create_key_file(path)
        try:
            keys, signature = _read(path)
        except FileNotFoundError:
            raise SecretKeyError(f"the key file {path} vanished as it was created") from None
    ring = Keyring(keys, f"the key file {path}")
    _files[path] = (signature, ring)
    return ring


def keyring_source(environ: Mapping[str, str] | None = None) -> str:
    """``"env"`` when ``STATEBOX_SECRET_KEY`` is set, else ``"file"``."""
    env = os.environ if environ is None else environ
    return "env" if env.get(KEY_ENV, "").strip() else "file"
