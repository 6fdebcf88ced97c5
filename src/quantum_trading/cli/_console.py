"""The shared rich console and CLI-wide state (``--debug``)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

__all__ = ["State", "console", "state"]

console = Console()


@dataclass
class State:
    """Options of the root command, visible to every sub-command."""

    debug: bool = False


state = State()
