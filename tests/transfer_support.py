"""What the transfer tests share: the ``statebox`` command as a subprocess (plain, or with
standard error on a pseudo-terminal) and a store's whole state to compare."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statebox import StateStore

CLI = [sys.executable, "-m", "statebox.cli"]


def run_cli(
    *args: str, env: Mapping[str, str], stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """``statebox ARGS`` with standard error a pipe (not a terminal)."""
    return subprocess.run(
        [*CLI, *args], env=dict(env), input=stdin, capture_output=True, timeout=timeout
    )


class TerminalRun:
    """``statebox ARGS`` with standard error on a pseudo-terminal (standard output a
    pipe): what a person at a terminal sees of its progress bar."""

    def __init__(self, *args: str, env: Mapping[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*CLI, *args],
            env={**env, "TERM": "xterm-256color", "COLUMNS": "160"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, done: Callable[[str], bool], timeout: float = 60) -> str:
        """Read the terminal until ``done(text so far)`` or the process ends."""
        deadline = time.monotonic() + timeout
        while not done(self.text) and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                self.seen += chunk
            elif self.proc.poll() is not None:
                break
        return self.text

    @property
    def text(self) -> str:
        return self.seen.decode("utf-8", "replace")

    def finish(self, timeout: float = 120) -> tuple[int, bytes, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.read_until(lambda _: False, timeout=0.5)
        code = self.proc.wait(timeout=timeout)
        os.close(self.master)
        return code, out, self.text


def state_of(store: StateStore) -> dict[tuple[str, str, str], Any]:
    """Every live key of ``store`` (the registry of secret keyspaces aside): its version,
    hash, value, content type, timestamps and expiry, and each history record's
    (version, hash, deleted, value, time). A secret keyspace's hashes are keyed by the
    sealing key, the same one in every store of a test."""
    from statebox.transfer import dump_records

    out: dict[tuple[str, str, str], Any] = {}
    for record in dump_records(store, history=True, include_secrets=True):
        current = record.current
        assert current is not None
        out[(record.scope, record.namespace, record.key)] = (
            current.version,
            current.hash,
            current.content_type,
            current.data,
            current.created_at,
            current.updated_at,
            current.expires_at,
            tuple((r.version, r.hash, r.deleted, r.data, r.updated_at) for r in record.history),
        )
    return out
