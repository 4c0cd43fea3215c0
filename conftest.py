"""Share the CPU fairly between pytest-xdist workers.

Each worker (and the notebook kernel it starts, which inherits the environment) gets
cores / workers threads: two workers each running a 2-thread torch job on 2 cores
oversubscribe the CPU and run several times slower than one thread each.
"""

import os

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)
