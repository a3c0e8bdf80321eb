"""Which keyspaces a file store holds: the namespace directories of each scope.

A keyspace is a directory ``v1/<scope>/<hex(namespace)>`` (JSON entries; the reserved
scope's are in ``statebox/v1/statebox/``) or ``statebox/blobs/<scope>/<hex(namespace)>``
(binary ones). Directories statebox would not name so (another scope, upper-case or odd
hex, an invalid namespace) and anything planted (symlinks, files) are skipped, as every
other walk of the store skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ...core.errors import CorruptEntryError, InvalidReferenceError
from ...core.model import Keyspace, Scope, validate_namespace
from ..base import keyspace_sort_key
from ._dirs import open_no_symlinks
from ._reads import key_from_name

__all__ = ["keyspaces_in"]

_SCOPES = frozenset(s.value for s in Scope)


def _subdirectories(path: str) -> list[str]:
    """The real subdirectories of ``path``; none when it is missing or planted."""
    try:
        fd = open_no_symlinks(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError, CorruptEntryError):
        return []
    try:
        with os.scandir(fd) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    finally:
        os.close(fd)


def _namespace(hex_name: str) -> str | None:
    text = key_from_name(hex_name)
    if text is None:
        return None
    try:
        return text if validate_namespace(text) == text else None
    except InvalidReferenceError:
        return None


def keyspaces_in(roots: Iterable[str], scope: str | None) -> list[Keyspace]:
    """Every keyspace with a directory under one of ``roots`` (each holding one
    directory per scope), in the order of ``Backend.list_keyspaces``."""
    found: set[Keyspace] = set()
    for root in roots:
        for scope_name in _subdirectories(root):
            if scope_name not in _SCOPES or (scope is not None and scope_name != scope):
                continue
            for hex_name in _subdirectories(os.path.join(root, scope_name)):
                namespace = _namespace(hex_name)
                if namespace is not None:
                    found.add(Keyspace(scope_name, namespace))
    return sorted(found, key=keyspace_sort_key)
