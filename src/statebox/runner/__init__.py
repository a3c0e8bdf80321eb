"""The workflow runner, Dagu form: ``statebox run FILE.yaml`` executes DAG files written
for Dagu against a statebox store.

A face like the CLI and the server: it parses DAG files, runs their steps, and calls the
engine (:class:`statebox.StateStore`) for state actions, in-process. It never imports
another face; its commands reach the ``statebox`` command line through the
``statebox.commands`` entry points (``pyproject.toml``).

Modules:

- :mod:`.model` — the parsed DAG (plain data).
- :mod:`.loader` — YAML → :class:`.model.DAG`, with every problem's file, line and column
  (``statebox validate``); the older camelCase keys with a warning; sub-DAG lookup.
- :mod:`.refs` — ``${…}`` references: finding, rendering (strings raw, JSON compact,
  numbers by their literal), typed references in ``with``.
- :mod:`.conditions` — preconditions and ``continue_on.output`` / repeat matching.
- :mod:`.actions` — ``state.*`` and ``lease.*`` steps, run in-process.
- :mod:`.executor` — runs one DAG: parallel steps, retries, repeats, timeouts, handlers,
  sub-DAGs, signals, the run scope's purge.
- :mod:`.records` — run records and step logs in the store's reserved ``statebox`` scope.
- :mod:`.display` — live progress on a terminal (rich), plain lines otherwise.
- :mod:`.scheduler` — ``statebox schedule DIR``: cron, overlap policies, one run per
  occurrence across machines (a lease with a fencing token per DAG and occurrence).
- ``cmd_*`` — the commands: run, validate, runs, schedule.
"""
