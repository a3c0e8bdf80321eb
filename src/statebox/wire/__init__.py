"""The wire protocol, shared by the HTTP server (a face) and the ``http://`` backend.

It sits below both, above :mod:`statebox.core`: encoding and decoding of entries,
history records, leases, errors, durations and the run context (:mod:`.codec`). Nothing
here does I/O or imports a web framework.
"""
