"""Other systems' state APIs, kept as their users call them, on a statebox store.

Each subpackage is a face, as the CLI, the server and the runner are: it calls the
engine and nothing below it, and no face imports another (the contract is in
``.importlinter``). :mod:`statebox.compat.atlan` is the Atlan Apps Framework's
``StateStore``.
"""
