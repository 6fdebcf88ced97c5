"""Keep numba's on-disk cache of the simulator kernels consistent across modules.

numba's ``cache=True`` checks only the source file of the function it caches, but a compiled
kernel also contains the kernels it calls from other modules (``step_nb`` is inlined into
``simulate_nb``; every module calls ``accounting_nb``). Editing, say, ``costs_nb.py`` would
leave ``engine_nb``'s cached machine code stale. So, on import, every kernel module older than
the newest one gets the newest modification time: any kernel edit recompiles all of them.
Nothing happens when the files cannot be touched (a read-only install).
"""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_WATCHED = ("*_nb.py", "records.py")


def sync_kernel_mtimes(folder: Path = _HERE) -> int:
    """Give every kernel module the newest modification time among them; return how many
    files were touched."""
    files = [p for pattern in _WATCHED for p in folder.glob(pattern)]
    try:
        stamps = {p: p.stat().st_mtime_ns for p in files}
    except OSError:
        return 0
    if not stamps:
        return 0
    newest = max(stamps.values())
    touched = 0
    for path, stamp in stamps.items():
        if stamp < newest:
            try:
                os.utime(path, ns=(newest, newest))
                touched += 1
            except OSError:
                pass
    return touched


sync_kernel_mtimes()
