"""Another process holding a SQLite database's write lock, for the tests that wait on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["hold_write_lock"]

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_write_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """A process that holds ``db``'s write lock for ``seconds`` (returned once it does)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc
