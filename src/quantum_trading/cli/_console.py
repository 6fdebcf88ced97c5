"""The shared rich console and CLI-wide state (``--debug``)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from rich.console import Console

__all__ = ["State", "console", "state"]

# Piped output (logs, CI) gets 140 columns rather than rich's 80, so tables are not truncated.
_PIPED_WIDTH = None if (sys.stdout.isatty() or "COLUMNS" in os.environ) else 140
console = Console(width=_PIPED_WIDTH)


@dataclass
class State:
    """Options of the root command, visible to every sub-command."""

    debug: bool = False


state = State()
