"""What the machine has to spare: `available_memory_bytes` (checked before big allocations and worker pools)."""

from __future__ import annotations

import os

__all__ = ["available_memory_bytes"]


def available_memory_bytes() -> int | None:
    """Memory available to new processes: ``MemAvailable`` of /proc/meminfo, else free physical pages.

    None when neither can be read (then no cap is applied).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None
