"""The deterministic state machine and the command table (DESIGN.md sections 2, 4, 5)."""

from __future__ import annotations

from .backend import Backend, MemoryBackend
from .commands import COMMANDS, CommandSpec, KeySpec, is_write, lookup
from .statemachine import Db, StateMachine

__all__ = [
    "COMMANDS",
    "Backend",
    "CommandSpec",
    "Db",
    "KeySpec",
    "MemoryBackend",
    "StateMachine",
    "is_write",
    "lookup",
]
