"""Reading configuration and metadata files: one place for the errors a person sees when a
file is missing, unreadable or malformed (each names the file and, where known, the line).

The pydantic models that validate the contents live with their subsystems
(:mod:`quantum_trading.risk.config`, :mod:`quantum_trading.rl.schedule`, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from quantum_trading.errors import ConfigError

__all__ = ["read_json_object", "read_yaml"]


def read_yaml(path: str | Path, *, what: str) -> Any:
    """The parsed YAML of ``path`` (``what`` names the kind of file in the message when it
    does not exist, e.g. "schedule"). Raises :class:`ConfigError` naming the file (and the
    line of a syntax error).

    >>> read_yaml("/nonexistent.yaml", what="risk config")
    Traceback (most recent call last):
    ...
    quantum_trading.errors.ConfigError: /nonexistent.yaml: no such risk config file
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such {what} file")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}: invalid YAML{at}") from exc


def read_json_object(path: str | Path, *, missing_hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``. Raises :class:`ConfigError` naming the file when it is
    missing (``missing_hint`` is appended, e.g. "(is this a model bundle?)"), not valid JSON
    (with the line) or not an object."""
    p = Path(path)
    if not p.is_file():
        hint = f" {missing_hint}" if missing_hint else ""
        raise ConfigError(f"{p.parent}: no {p.name}{hint}")
    try:
        out = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(out, dict):
        raise ConfigError(f"{p}: expected a JSON object")
    return out
