"""Where everything of a file store lives, and the ``file://`` URL that names it.

Dagu's records, exactly where Dagu puts them, and Dagu's two forms of lock (_dagulock)::

    <dir>/v1/<scope>/<hex(namespace)>/<hex(key)>.json
    <dir>/v1/<scope>/<hex(namespace)>/<hex(key)>/.dagu_lock     per-key (Dagu before v2.14)
    <dir>/.dagu_record_locks/<xx>/.dagu_lock                    bucket (Dagu v2.14 and later)

statebox's own files, under ``<dir>/statebox/``, where a Dagu reader never looks (it
walks only ``*.json`` files, and only under ``<dir>/v1/``)::

    statebox/v1/statebox/<hex(ns)>/<hex(key)>.json      entries of the reserved scope
                                                          ``statebox`` (run records …)
    statebox/blobs/<scope>/<hex(ns)>/<hex(key)>.blob     binary entries
    statebox/meta/<scope>/<hex(ns)>/<hex(key)>.meta      TTL and principal of an entry
    statebox/history/<scope>/<hex(ns)>/<hex(key)>.log    the key's kept versions
    statebox/leases/<hex(name)>.lease                    leases and their fencing tokens
    statebox/locks/<bucket>.lock                         flock() buckets
    statebox/journal/<buckets>-<id>.txn                  multi-file transactions in flight
    statebox/changes                                     the watch counter

Hex is lower-case hex of the UTF-8 bytes: it keeps byte order and prefixes, so listings
filter and sort on the names alone.

The reserved scope ``statebox`` (statebox's own records) has Dagu's record form, but not
its place: its records are written as Dagu writes records, in a Dagu-shaped tree of
their own (``statebox/v1/``), so they never appear in Dagu's state, and Dagu's locks are
not taken for them (Dagu never writes them). Its binary entries, TTLs and history live
where every scope's do.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from ...core.errors import ConfigurationError, InvalidReferenceError, quoted
from ...core.model import Keyspace

__all__ = ["BUCKETS", "FileOptions", "KeyPaths", "Layout", "parse_file_url"]

SIDE: Final = "statebox"
#: The reserved scope whose records live under ``SIDE``, not in Dagu's ``v1/``.
SYSTEM_SCOPE: Final = "statebox"
#: Number of lock buckets; a record's bucket is a hash of its record id.
BUCKETS: Final = 256
RECORD_SUFFIX: Final = ".json"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class FileOptions:
    root: str
    #: Seconds to wait for a lock before :class:`BackendUnavailableError`.
    timeout: float = 30.0
    #: fsync files and directories (``?fsync=false`` trades power-loss safety for speed).
    fsync: bool = True


def parse_file_url(url: str, environ: Mapping[str, str] | None = None) -> FileOptions:
    """``file:///abs/dir[?timeout=S&fsync=BOOL]``; ``file://`` means ``$DAGU_DAG_STATE_DIR``."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise ConfigurationError(
            f"invalid file store URL {quoted(url)}: it must start with file://"
        )
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"invalid file store URL {quoted(url)}: {quoted(parts.netloc)} would be a host name; "
            "use three slashes and an absolute directory: file:///absolute/dir"
        )
    root = unquote(parts.path)
    if not root:
        root = env.get("DAGU_DAG_STATE_DIR", "").strip()
        if not root:
            raise ConfigurationError(
                f"file store URL {quoted(url)} names no directory and DAGU_DAG_STATE_DIR "
                "is not set: "
                "use file:///absolute/dir, or set DAGU_DAG_STATE_DIR to Dagu's state directory"
            )
        if not os.path.isabs(root):
            raise ConfigurationError(
                f"DAGU_DAG_STATE_DIR={quoted(root)} is a relative path: set it to an "
                "absolute directory"
            )
    if not os.path.isabs(root):
        raise ConfigurationError(
            f"invalid file store URL {quoted(url)}: {quoted(root)} is a relative path; "
            "use an absolute directory with three slashes: file:///absolute/dir"
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - {"timeout", "fsync"})
    if unknown:
        raise ConfigurationError(
            f"unknown option {quoted(unknown[0])} in file store URL {quoted(url)}: "
            "known are timeout, fsync"
        )
    try:
        timeout = float(options.get("timeout", "30"))
    except ValueError:
        raise ConfigurationError(
            f"invalid timeout in {quoted(url)}: not a number of seconds"
        ) from None
    if not timeout >= 0:
        raise ConfigurationError(f"invalid timeout in {quoted(url)}: must be 0 or more seconds")
    fsync_text = options.get("fsync", "true").lower()
    if fsync_text not in _TRUE | _FALSE:
        raise ConfigurationError(
            f"invalid fsync={quoted(fsync_text)} in {quoted(url)}: use true or false"
        )
    return FileOptions(os.path.normpath(root), timeout, fsync_text in _TRUE)


@dataclass(frozen=True, slots=True)
class KeyPaths:
    """Every file of one key."""

    #: Dagu's record id ``v1/<scope>/<hex(ns)>/<hex(key)>``.
    record_id: str
    record: str
    blob: str
    meta: str
    history: str
    #: A record Dagu reads (in ``v1/``): written under Dagu's locks too. False for the
    #: reserved scope's, which Dagu never sees.
    dagu: bool = True

    @property
    def bucket(self) -> int:
        """The lock bucket that guards all of them."""
        return _bucket(self.record_id)


def _bucket(lock_id: str) -> int:
    return int.from_bytes(hashlib.sha256(lock_id.encode()).digest()[:4], "big") % BUCKETS


class Layout:
    """Paths under one store directory, with the file-name limit checked up front."""

    def __init__(self, root: str, name_max: int) -> None:
        self.root = root
        self.name_max = name_max
        self.side = os.path.join(root, SIDE)
        self.journal_dir = os.path.join(self.side, "journal")
        self.locks_dir = os.path.join(self.side, "locks")
        self.leases_dir = os.path.join(self.side, "leases")
        self.meta_root = os.path.join(self.side, "meta")
        self.changes = os.path.join(self.side, "changes")
        #: Where records are: Dagu's, and the reserved scope's (each one directory per scope).
        self.record_roots = (os.path.join(root, "v1"), os.path.join(self.side, "v1"))
        self._namespaces: dict[Keyspace, str] = {}

    def _records_root(self, scope: str) -> str:
        return self.record_roots[1] if scope == SYSTEM_SCOPE else self.record_roots[0]

    def keyspace_dirs(self, keyspace: Keyspace) -> tuple[str, str]:
        """The directory of the keyspace's Dagu records and of its binary entries."""
        hex_ns = self.namespace_part(keyspace)
        return (
            os.path.join(self._records_root(keyspace.scope), keyspace.scope, hex_ns),
            os.path.join(self.side, "blobs", keyspace.scope, hex_ns),
        )

    def namespace_part(self, keyspace: Keyspace) -> str:
        hex_ns = self._namespaces.get(keyspace)
        if hex_ns is None:
            hex_ns = keyspace.namespace.encode().hex()
            if len(hex_ns) > self.name_max:
                raise InvalidReferenceError(
                    f"invalid namespace {quoted(keyspace.namespace)}: too long for the file store, "
                    f"whose directory names (hex of the UTF-8 bytes) may have {self.name_max} "
                    f"characters here; use at most {self.name_max // 2} bytes"
                )
            if len(self._namespaces) < 4096:
                self._namespaces[keyspace] = hex_ns
        return hex_ns

    def key_paths(self, keyspace: Keyspace, key: str) -> KeyPaths:
        hex_ns = self.namespace_part(keyspace)
        hex_key = key.encode().hex()
        if len(hex_key) + len(RECORD_SUFFIX) > self.name_max:
            raise InvalidReferenceError(
                f"invalid key {quoted(key)}: too long for the file store, whose file names "
                f"(hex of the UTF-8 bytes + {RECORD_SUFFIX}) may have {self.name_max} characters "
                f"here; use at most {(self.name_max - len(RECORD_SUFFIX)) // 2} bytes"
            )
        # Plain concatenation: this runs for every read, and the layout is POSIX-only.
        tail = f"{keyspace.scope}/{hex_ns}/{hex_key}"
        dagu = keyspace.scope != SYSTEM_SCOPE
        return KeyPaths(
            record_id="v1/" + tail,
            record=f"{self.root if dagu else self.side}/v1/{tail}{RECORD_SUFFIX}",
            blob=f"{self.side}/blobs/{tail}.blob",
            meta=f"{self.side}/meta/{tail}.meta",
            history=f"{self.side}/history/{tail}.log",
            dagu=dagu,
        )

    def lease_path(self, name: str) -> tuple[str, int]:
        """The lease's file and its lock bucket."""
        hex_name = name.encode().hex()
        if len(hex_name) + len(".lease") > self.name_max:
            raise InvalidReferenceError(
                f"invalid lease name {quoted(name)}: too long for the file store; "
                f"use at most {(self.name_max - len('.lease')) // 2} bytes"
            )
        return os.path.join(self.leases_dir, hex_name + ".lease"), _bucket("lease/" + hex_name)

    def lock_path(self, bucket: int) -> str:
        return os.path.join(self.locks_dir, f"{bucket:02x}.lock")
