"""Feasibility facts that do not depend on latency: counts and memory (Hall's condition).

Memory feasibility m_n <= M_k gives every device a set of blocks that is a prefix of the blocks
sorted by memory need, so these sets are nested and Hall's condition reduces to counting: a
one-to-one assignment of all blocks to devices that can hold them exists iff, for every block n,
at least as many devices have M_k >= m_n as there are blocks with m_j >= m_n.

>>> import numpy as np
>>> memory_shortfall(np.array([1.0, 2.0, 3.0]), np.array([5.0, 1.5, 1.0]))
MemoryShortfall(need_bytes=2.0, n_blocks=2, n_devices=1, block_index=1)
>>> memory_shortfall(np.array([1.0, 2.0, 3.0]), np.array([5.0, 2.5, 1.0])) is None
True
>>> memory_shortfall(np.array([1.0, 2.0]), np.array([5.0, 2.5, 1.0])) is None
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MemoryShortfall", "memory_shortfall"]


@dataclass(frozen=True)
class MemoryShortfall:
    """``n_blocks`` blocks each need at least ``need_bytes``; only ``n_devices`` devices have it."""

    need_bytes: float
    n_blocks: int
    n_devices: int
    block_index: int  # the shallowest (least demanding) block of the violating set


def memory_shortfall(block_memory, device_memory) -> MemoryShortfall | None:
    """The most violated Hall inequality of the memory sets, or None when all blocks can be held."""
    block_memory = np.asarray(block_memory, dtype=float)
    device_memory = np.sort(np.asarray(device_memory, dtype=float))
    order = np.argsort(block_memory, kind="stable")
    need = block_memory[order]
    n_blocks = len(need)
    # blocks with memory >= need[i]: those at sorted positions >= first position of that value
    first_pos = np.searchsorted(need, need, side="left")
    blocks_needing = n_blocks - first_pos
    devices_having = len(device_memory) - np.searchsorted(device_memory, need, side="left")
    deficit = blocks_needing - devices_having
    worst = int(np.argmax(deficit))
    if deficit[worst] <= 0:
        return None
    return MemoryShortfall(float(need[worst]), int(blocks_needing[worst]),
                           int(devices_having[worst]), int(order[worst]))
