"""Keep numba's on-disk cache of the simulator kernels consistent across modules.

numba's ``cache=True`` checks only the source file of the function it caches (numba ≥ 0.59:
a hash of its content; older: its modification time), but a compiled kernel also contains the
kernels it calls from other modules (``step_nb`` is inlined into ``simulate_nb``; every module
calls ``accounting_nb``; ``quantum_trading.research``'s sweep kernels call ``simulate_nb``).
Editing, say, ``orders_nb.py`` would leave ``engine_nb``'s cached machine code stale — and so
would installing a new version in which only a callee changed. So, on import:

* :func:`purge_stale_kernels`: when the kernel sources (every ``*_nb.py`` and ``records.py``
  here) differ from the ones the caches were built from (a digest kept in
  ``__pycache__/kernels.sha256``), the cached machine code of this folder and of every module
  of the package that imports ``quantum_trading.sim`` is deleted; numba recompiles it on
  first use (about 25 s for the simulator);
* :func:`sync_kernel_mtimes`: every kernel module older than the newest one gets the newest
  modification time (what invalidates caches for numba versions that stamp by mtime).

Nothing happens when the files cannot be read or written (a read-only install), and the
package's caches are left alone when ``NUMBA_CACHE_DIR`` moves them elsewhere.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_PACKAGE = _HERE.parent
_WATCHED = ("*_nb.py", "records.py")
_STAMP = "kernels.sha256"


def _kernel_files(folder: Path) -> list[Path]:
    return sorted({p for pattern in _WATCHED for p in folder.glob(pattern)})


def kernel_digest(folder: Path = _HERE) -> str:
    """SHA-256 of the kernel modules' names and contents."""
    h = hashlib.sha256()
    for path in _kernel_files(folder):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def purge_stale_kernels(folder: Path = _HERE, package: Path = _PACKAGE) -> int:
    """Delete cached machine code that may contain outdated kernels; return how many cache
    files were removed (0 when the sources are the ones the caches were built from)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return 0
    try:
        digest = kernel_digest(folder)
    except OSError:
        return 0
    stamp = folder / "__pycache__" / _STAMP
    try:
        if stamp.read_text() == digest:
            return 0
    except OSError:  # no stamp yet (or unreadable): check the cache below
        pass
    stems = {(folder, p.stem) for p in folder.glob("*.py")}
    for path in package.rglob("*.py"):
        if path.parent == folder or "__pycache__" in path.parts:
            continue
        try:
            if "quantum_trading.sim" in path.read_text(encoding="utf-8", errors="ignore"):
                stems.add((path.parent, path.stem))
        except OSError:
            continue
    removed = 0
    for parent, stem in stems:
        for pattern in (f"{stem}.*.nbi", f"{stem}.*.nbc"):
            for cached in (parent / "__pycache__").glob(pattern):
                try:
                    cached.unlink()
                    removed += 1
                except OSError:  # gone already, or read-only: numba recompiles it anyway
                    pass
    try:
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # read-only install: the check simply runs again next time
        pass
    return removed


def sync_kernel_mtimes(folder: Path = _HERE) -> int:
    """Give every kernel module the newest modification time among them; return how many
    files were touched."""
    files = _kernel_files(folder)
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
            except OSError:  # read-only install: the cache guard above still applies
                pass
    return touched


purge_stale_kernels()
sync_kernel_mtimes()
