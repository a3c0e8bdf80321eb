"""The pure core: what every layer above may use and nothing here does I/O.

The model (scopes, namespaces, keys, keyspaces, the run context), values (normalization,
exact-number JSON, hashes), the clock, the error tree, the record types a backend stores,
the version rules (:mod:`.versions`) and the result data the operations return. Nothing in
this package imports the engine, a backend, the wire protocol or a face; the import
contracts in ``.importlinter`` keep it so. The package imports none of its modules itself:
the CLI's ``get`` loads only the ones it uses.
"""
