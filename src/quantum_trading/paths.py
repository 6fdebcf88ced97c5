"""Where user data and the shared real market data live.

``user_data/`` (next to where the user runs, as in freqtrade) holds data, models, reports and the
database. ``QUANTUM_USER_DATA`` overrides it. Real market data for tests and benchmarks is read
from ``QUANTUM_REAL_DATA`` (default ``../shared/data`` relative to the project root).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_ROOT", "real_data_dir", "user_data_dir"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def user_data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The ``user_data`` folder: ``override``, else ``$QUANTUM_USER_DATA``, else ``./user_data``."""
    if override is not None:
        return Path(override)
    env = os.environ.get("QUANTUM_USER_DATA")
    return Path(env) if env else Path.cwd() / "user_data"


def real_data_dir() -> Path:
    """The shared real-data folder: ``$QUANTUM_REAL_DATA``, else ``<project>/../shared/data``."""
    env = os.environ.get("QUANTUM_REAL_DATA")
    return Path(env) if env else (PROJECT_ROOT.parent / "shared" / "data").resolve()
