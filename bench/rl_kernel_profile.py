"""Profile the batched RL env's compiled kernel with Linux ``perf``: the kernel's functions get
names in a perf map, and with ``--lines`` its samples are attributed to source lines.

numba's JIT code has no symbols perf can see, and a kernel loaded from numba's on-disk cache
keeps no function table. This script therefore compiles the kernels afresh into a temporary
cache (about 2 minutes). It steps a :class:`~quantum_trading.rl.vec_env.PerpetualFuturesVecEnv`
(real BTC 1h bars, random actions, one thread) and writes ``/tmp/perf-<pid>.map`` with every
compiled function's address, which ``perf report`` reads. It then prints its pid and keeps
stepping for ``--seconds``. Record it from another shell meanwhile:

    .venv/bin/python bench/rl_kernel_profile.py --seconds 20 &
    perf record -F 2000 -p <pid> -o /tmp/rl.perf -- sleep 10
    perf report -i /tmp/rl.perf --no-children --sort symbol --stdio

With ``--lines`` the kernels are compiled with debug info (``NUMBA_DEBUGINFO=1``). The batch
step's object code is written next to the map (``/tmp/rl_batch_step.o``, plus its functions'
run-time addresses as JSON), so samples can be mapped to source lines: sample address −
function address + the symbol's offset in the object (``nm``), then ``objdump -d -l``. Debug
info slows the kernel, so compare proportions, not rates.

Findings (2026-11-21, ``docs/benchmarks.md``, "Reinforcement learning environment") come from
this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

if __name__ == "__main__":  # before numba is imported: a fresh cache, optional debug info
    _args = sys.argv[1:]
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-profile-")
    if "--lines" in _args:
        os.environ["NUMBA_DEBUGINFO"] = "1"

import gc
import json
import time
import warnings
from pathlib import Path

import numpy as np


def _compiled_functions() -> list[tuple[int, str]]:
    """(address, name) of every function numba compiled in this process."""
    from numba.core.dispatcher import Dispatcher

    out = []
    for obj in gc.get_objects():
        if not isinstance(obj, Dispatcher):
            continue
        for cres in obj.overloads.values():
            module = getattr(cres.library, "_final_module", None)
            if module is None:  # loaded from a cache: no function table
                continue
            for f in module.functions:
                if f.is_declaration:
                    continue
                address = cres.library.get_pointer_to_function(f.name)
                if address:
                    out.append((address, f.name))
    return sorted(set(out))


def write_perf_map(path: Path) -> int:
    """Write a perf map of the compiled functions (each one's size taken as the distance to
    the next one's address); returns how many were written."""
    functions = _compiled_functions()
    with path.open("w") as fh:
        for k, (address, name) in enumerate(functions):
            end = functions[k + 1][0] if k + 1 < len(functions) else address + 4096
            fh.write(f"{address:x} {min(end - address, 1 << 20):x} {name}\n")
    return len(functions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=64, help="envs in the batch")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to step")
    parser.add_argument("--lines", action="store_true",
                        help="compile with debug info and write the batch step's object code")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quantum_trading.domain import BINANCE_BTCUSDT_PERP
    from quantum_trading.rl import batch_nb
    from quantum_trading.rl.env import EnvConfig
    from quantum_trading.rl.spec import EnvSpec
    from quantum_trading.rl.vec_env import PerpetualFuturesVecEnv
    from rl_env import BTC, WINDOW, _bars

    bars = _bars()
    spec = EnvSpec(symbols=(BTC,), timeframe="1h", window=WINDOW)
    vec = PerpetualFuturesVecEnv({BTC: bars}, spec=spec, n_envs=args.envs, config=EnvConfig(),
                                 instruments=BINANCE_BTCUSDT_PERP, seed=0, n_threads=1)
    actions = np.random.default_rng(0).uniform(-1, 1, (400, args.envs, 1)).astype(np.float32)
    vec.reset()
    for k in range(len(bars) + 50):  # compiles, and grows the buffers to full size
        vec.step(actions[k % len(actions)])
    n = write_perf_map(Path(f"/tmp/perf-{os.getpid()}.map"))
    if args.lines:
        for cres in batch_nb.batch_step_nb.overloads.values():
            library = cres.library
            Path("/tmp/rl_batch_step.o").write_bytes(library._get_compiled_object())
            addresses = {f.name: library.get_pointer_to_function(f.name)
                         for f in library._final_module.functions if not f.is_declaration}
            Path("/tmp/rl_batch_step.addresses.json").write_text(json.dumps(addresses))
    print(json.dumps({"pid": os.getpid(), "functions_mapped": n}), flush=True)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < args.seconds:
        for a in actions:
            vec.step(a)
        steps += actions.shape[0] * args.envs
    print(json.dumps({"env_steps_per_s": round(steps / (time.perf_counter() - t0))}))


if __name__ == "__main__":
    main()
