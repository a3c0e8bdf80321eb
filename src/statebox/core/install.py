"""How to install an optional extra: the commands an error message gives.

statebox is not on PyPI, so ``pip install "statebox[postgres]"`` would find nothing (or,
one day, someone else's package). What works is installing the packages the extra adds —
each of those is on PyPI — into the environment statebox runs in, or the extra itself
from a clone (``pip install ".[postgres]"``), or, for a pipx install, ``pipx inject``.

The extra's requirements are read from the installed distribution's metadata
(``importlib.metadata.requires("statebox")``), so the message always matches the
``pyproject.toml`` it was built from. Only when the message is made: ``importlib.metadata``
costs milliseconds the CLI's ``get`` does not pay.
"""

from __future__ import annotations

import re

__all__ = ["DISTRIBUTION", "extra_hint", "extra_requirements"]

DISTRIBUTION = "statebox"

# `extra == "postgres"` (or 'postgres'), as the metadata writes it, anywhere in a marker.
_EXTRA_CLAUSE = re.compile(r"""\bextra\s*==\s*(["'])([^"']+)\1""")
# The clause with the "and" that joins it to the rest of the marker, on either side.
_JOINED_CLAUSE = re.compile(
    r"""\s*\band\s+extra\s*==\s*(["'])[^"']+\1|\bextra\s*==\s*(["'])[^"']+\2\s*(\band\s+)?"""
)


def _normalize(name: str) -> str:
    """PEP 685: extras compare lower-cased, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(marker: str) -> bool:
    """Whether a marker without its extra clause holds here (``sys_platform != 'win32'``).
    Evaluated with ``packaging`` when it is importable; without it the requirement is
    kept: pip skips it itself where the marker, quoted along, does not hold."""
    if not marker:
        return True
    try:
        from packaging.markers import InvalidMarker, Marker
    except ImportError:
        return True
    try:
        return Marker(marker).evaluate()
    except InvalidMarker:
        return True


def extra_requirements(extra: str) -> list[str] | None:
    """The requirements the extra adds (``["psycopg[binary,pool]>=3.2"]``), those whose
    other markers do not hold here left out; ``None`` when statebox's metadata cannot be
    read (run from a source tree that was never installed). An extra the metadata does
    not declare is a ValueError: a message must never name a command that cannot work."""
    from importlib.metadata import PackageNotFoundError, metadata, requires

    try:
        declared = requires(DISTRIBUTION)
        provided = metadata(DISTRIBUTION).get_all("Provides-Extra") or []
    except PackageNotFoundError:
        return None
    wanted = _normalize(extra)
    if wanted not in {_normalize(name) for name in provided}:
        raise ValueError(f"statebox has no extra named {extra!r}")
    found: list[str] = []
    for line in declared or ():
        requirement, _, marker = line.partition(";")
        clause = _EXTRA_CLAUSE.search(marker)
        if clause is None or _normalize(clause.group(2)) != wanted:
            continue
        rest = _JOINED_CLAUSE.sub("", marker, count=1).strip()
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1].strip()
        if _applies(rest):
            found.append(requirement.strip())
    return found


def _quoted(requirements: list[str]) -> str:
    return " ".join(f'"{r}"' for r in requirements)


def extra_hint(extra: str) -> str:
    """The commands that install ``extra`` for this project, for an error message:
    ``pip install "psycopg[binary,pool]>=3.2" (into statebox's environment; from a
    clone of statebox: pip install ".[postgres]"; installed with pipx: pipx inject
    statebox "psycopg[binary,pool]>=3.2")``."""
    from_clone = f'from a clone of statebox: pip install ".[{extra}]"'
    requirements = extra_requirements(extra)
    if requirements is None:
        return f"{from_clone} (see docs/install.md)"
    if not requirements:
        return f"the {extra} extra adds no packages: reinstall statebox ({from_clone})"
    packages = _quoted(requirements)
    return (
        f"pip install {packages} (into statebox's environment; {from_clone}; "
        f"installed with pipx: pipx inject {DISTRIBUTION} {packages})"
    )
