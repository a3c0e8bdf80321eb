"""Secrets encrypted at rest: one layer over the backend contract (issue #16).

``seal_backend(backend)`` wraps a backend so that the values of secret keyspaces
(:mod:`statebox.core.secrecy`) are stored sealed with AES-256-GCM; ``open_backend``
applies it to every store it opens, so its import is on every command line's path: it
loads the layer only. The modules, each imported when first needed: ``keyring`` (the
keys and the key file), ``cipher`` (AES-GCM, the keyed hash: ``cryptography``,
``hashlib`` and ``hmac`` come in with it), ``rotate`` (``rotate``, ``RotateReport``).
What is stored and how keys are handled: docs/secrets.md.
"""

from __future__ import annotations

from .backend import SEALED_CONTENT_TYPE, SealedBackend, seal_backend

__all__ = ["SEALED_CONTENT_TYPE", "SealedBackend", "seal_backend"]
