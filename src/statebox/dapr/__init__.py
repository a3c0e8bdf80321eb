"""Dapr's APIs on statebox: the face the real ``dapr`` SDK and the Atlan SDK talk to.

Apps written for a Dapr sidecar (``DaprClient``, the Atlan Apps Framework) point at
``statebox serve`` instead and get statebox's store, history, watch and UI under the same
data. This package is that face: the component files (:mod:`.components`), the keys
(:mod:`.keys`), Dapr's errors (:mod:`.errors`), and the operations of the state, secrets,
bindings and metadata APIs, written once and free of any transport
(:mod:`.state_api`, :mod:`.secrets_api`, :mod:`.bindings_api`, :mod:`.metadata_api`);
the HTTP routes and the gRPC service call them through a
:class:`~statebox.web.extension.Caller`.

The mapping, in brief (docs/dapr.md has it whole):

- A served component NAME (a ``state.*`` store, a ``secretstores.*`` store, an
  object-store binding) is the keyspace scope ``custom``, namespace ``dapr-NAME``; an
  object store's objects under a ``credentials`` path segment go to
  ``dapr-NAME-credentials``. Secret stores' keyspaces and the ``-credentials`` ones are
  secret (sealed at rest, masked in statebox's own outputs). Other components are
  reported, not served.
- A state key is prefixed as Dapr prefixes it (``APPID||key`` by default, the
  component's ``keyPrefix``), then kept as the statebox key when it is a valid one as it
  is, else stored as ``~`` + base64url (:mod:`.keys`).
- ETag = the statebox version; ``ttlInSeconds`` = the entry's ttl; bulk writes and
  transactions = one statebox transaction; JSON values are stored as statebox JSON,
  other bytes as blobs.
"""
