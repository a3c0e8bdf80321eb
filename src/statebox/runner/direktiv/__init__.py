"""The workflow runner, Direktiv form: workflow files written for Direktiv v0.10
(``states:``) run locally against a statebox store.

Modules: :mod:`.model` (the parsed workflow), :mod:`.loader` (YAML → model, every
problem with its file, line and column), :mod:`.durations` (ISO 8601 durations),
:mod:`.expressions` (``jq(...)``), :mod:`.variables` (Direktiv's scopes on statebox's),
:mod:`.files`, :mod:`.varserver`, :mod:`.functions` and :mod:`.engine` (the instance).
Nothing is imported here, so that importing the package stays cheap.
"""
