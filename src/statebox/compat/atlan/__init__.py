"""The Atlan Apps Framework's ``StateStore`` on statebox: change one import.

An app that does ::

    from application_sdk.services.statestore import StateStore, StateType

does instead ::

    from statebox.compat.atlan import StateStore, StateType

and keeps every call as it was (``get_state``, ``save_state``, ``save_state_object``,
``build_state_store_path``, ``StateType.is_member``), with no lost updates and no read
error taken for "no state". Objects live in the store ``STATEBOX_STORE`` names: scope
``custom``, namespace ``atlan-{app}-{state type}``, key = the id; credentials are
encrypted at rest. See docs/atlan.md.
"""

from ._naming import PathTraversalError, StateType, build_state_store_path
from .statestore import StateStore

__all__ = ["PathTraversalError", "StateStore", "StateType", "build_state_store_path"]
