"""The backends every conformance test runs against.

Each entry makes a fresh, empty store URL for one test and cleans up after it. A new
backend joins the conformance suite by adding one entry here.

:data:`SEALED_BACKENDS` runs the conformance suites (test_conformance*.py, which take
:func:`conformance_backend_url` as their ``backend_url``) once more through the sealing
layer (issue 16): every keyspace declared secret and a fresh key per test, so every
rule of the contract is checked on ciphertext at rest. They are not in
:data:`BACKENDS`, which other suites also iterate (the CLI's, the races'), and whose
in-process and output assumptions a masked, sealed store does not meet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .pg import postgres_url
from .server_util import http_sqlite_url, http_url

if TYPE_CHECKING:
    from statebox import StateStore
    from statebox.core.model import Keyspace


@contextmanager
def memory_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield "memory://"


@contextmanager
def sqlite_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'state.db'}"


@contextmanager
def file_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    yield f"file://{tmp_path / 'file-store'}"


UrlFactory = Callable[[Path, pytest.FixtureRequest], AbstractContextManager[str]]

#: name -> factory of a fresh store URL. Order is the order tests run in.
BACKENDS: dict[str, UrlFactory] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
    "file": file_url,
    "postgres": postgres_url,  # needs the session fixture pg_server (tests/pg.py)
    "http": http_url,  # a live statebox server in a subprocess (tests/server_util.py)
    "http-sqlite": http_sqlite_url,  # the same over SQLite: the group-commit write path
}


# --- the same suites through the sealing layer (issue 16) -------------------------------

#: Every keyspace secret: each value the suites write is sealed.
EVERY_KEYSPACE = "*/*"


def new_secret_key() -> str:
    """A fresh secret key as ``STATEBOX_SECRET_KEY`` takes it (32 bytes, URL-safe
    base64), made here rather than by the code under test."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def sealed(factory: UrlFactory) -> UrlFactory:
    """``factory``'s store with every keyspace secret and a fresh key for the test (set in
    the environment, so subprocesses the test starts seal and open alike).

    Values are also revealed in the envelopes: a secret value renders as ``"***"``
    (tests/test_masking_*.py check that), while the suites compare envelopes with the
    values in them. The engine is given a policy without the suites' keyspaces; the
    backend keeps its own, so the sealing is untouched."""

    @contextmanager
    def make(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
        from statebox.backends.sealing.backend import SealedBackend
        from statebox.core.secrecy import SecretPolicy

        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("STATEBOX_SECRET_NAMESPACES", EVERY_KEYSPACE)
        monkeypatch.setenv("STATEBOX_SECRET_KEY", new_secret_key())
        monkeypatch.delenv("STATEBOX_SECRET_KEY_FILE", raising=False)
        monkeypatch.setattr(SealedBackend, "secret_policy", SecretPolicy())
        with factory(tmp_path, request) as url:
            yield url

    return make


#: name -> factory, as BACKENDS, for the conformance suites only.
SEALED_BACKENDS: dict[str, UrlFactory] = {
    "memory-sealed": sealed(memory_url),
    "sqlite-sealed": sealed(sqlite_url),
    "file-sealed": sealed(file_url),
}


@pytest.fixture(name="backend_url", params=[*BACKENDS, *SEALED_BACKENDS])
def conformance_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """conftest's ``backend_url`` plus the sealed variants: a conformance module imports
    it (``from .backends import conformance_backend_url``) to run on both."""
    factory = {**BACKENDS, **SEALED_BACKENDS}[request.param]
    with factory(tmp_path, request) as url:
        yield url


def entry_hash(
    store: StateStore,
    data: bytes,
    content_type: str = "application/json",
    keyspace: Keyspace | None = None,
    *,
    key: str,
) -> str:
    """The hash ``store`` reports for ``data`` as the value of ``key`` in ``keyspace``
    (the store's default one): SHA-256 of the bytes (SPEC §2), or, where the store seals
    the keyspace, the keyed hash (docs/secrets.md): HMAC-SHA256 over the JSON array
    ``[scope, namespace, key, content type]``, a newline and the bytes, under the key
    HKDF-SHA256 derives from the sealing key with info ``statebox entry hash``. Computed
    here from that definition, not by the code under test."""
    keyspace = keyspace or store.keyspace()
    policy = getattr(store.backend, "policy", None)  # a SealedBackend's
    if policy is None or not policy.is_secret(keyspace):
        return hashlib.sha256(data).hexdigest()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    primary = os.environ["STATEBOX_SECRET_KEY"].replace(",", " ").split()[0]
    hash_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"statebox entry hash"
    ).derive(base64.urlsafe_b64decode(primary))
    address = [str(keyspace.scope), keyspace.namespace, key, content_type]
    message = json.dumps(address, separators=(",", ":")).encode() + b"\n" + data
    return hmac.new(hash_key, message, "sha256").hexdigest()
