"""Moving a store's contents: dump, load, copy between backends, and back up SQLite.

The engine of ``statebox dump``, ``load``, ``copy`` and ``backup`` (docs/move-and-backup.md),
library-first::

    from statebox import open_store
    from statebox.transfer import copy_store

    with open_store("sqlite:///state.db") as src, open_store("postgresql://…") as dst:
        report = copy_store(src, dst)          # dump → load → verify
        assert report.verification.ok

- :func:`dump_records` streams a store as :class:`DumpRecord` s (page by page), the dump
  format's lines are :mod:`.codec`'s, files :mod:`.files`'.
- :func:`load_records` writes them with ``StateStore.import_keys``, idempotently.
- :func:`copy_store` is both, then :func:`verify_copy`.
- :func:`backup_sqlite` copies a SQLite store online with SQLite's backup API.
"""

from __future__ import annotations

from .backup import BackupReport, backup_sqlite
from .codec import HEADER, DumpRecord, decode_line, encode_line
from .copy import CopyReport, KeyspaceCount, Verification, copy_store, verify_copy
from .dump import DumpPosition, count_records, dump_records
from .files import read_dump, resume_position, write_dump
from .load import Conflict, LoadReport, load_records

__all__ = [
    "HEADER",
    "BackupReport",
    "Conflict",
    "CopyReport",
    "DumpPosition",
    "DumpRecord",
    "KeyspaceCount",
    "LoadReport",
    "Verification",
    "backup_sqlite",
    "copy_store",
    "count_records",
    "decode_line",
    "dump_records",
    "encode_line",
    "load_records",
    "read_dump",
    "resume_position",
    "verify_copy",
    "write_dump",
]
