"""The wire protocol, shared by the HTTP server (a face) and the ``http://`` backend.

It sits below both, above :mod:`statebox.core`: encoding and decoding of entries,
history records, leases, errors, durations, values and the run context
(:mod:`.codec`), and of the mutations ``/v1/apply`` carries (:mod:`.mutations`) — each
encoder beside its decoder, so the two sides cannot drift. JSON is parsed by the core's
one exact-number parser (:mod:`statebox.core.exactjson`). Nothing here does I/O or
imports a web framework.
"""
