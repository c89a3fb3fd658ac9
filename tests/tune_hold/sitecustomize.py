"""Test hook for tests/test_tune.py, active only with MNISTLAB_TEST_HOLD_DIR set.

A process that has just written a trial's state.npz (an epoch's checkpoint)
announces it with a file `<pid>-<trial>-<n>.held` in that folder and waits
until the test deletes the file or SIGKILLs it: the test acts on observed
progress, and a kill lands inside a trial for certain.
"""

import os

if os.environ.get("MNISTLAB_TEST_HOLD_DIR"):
    import contextlib
    import itertools
    import time
    from pathlib import Path

    import mnistlab.runs as _runs

    _original = _runs.atomic_path
    _count = itertools.count()

    @contextlib.contextmanager
    def atomic_path(path):
        with _original(path) as tmp:
            yield tmp
        path = Path(path)
        if path.name == "state.npz":
            folder = Path(os.environ["MNISTLAB_TEST_HOLD_DIR"])
            hold = folder / f"{os.getpid()}-{path.parent.name}-{next(_count)}.held"
            tmp_hold = hold.with_suffix(".tmp")
            tmp_hold.write_text(str(path))
            tmp_hold.rename(hold)
            deadline = time.time() + 120
            while hold.exists() and time.time() < deadline:
                time.sleep(0.01)

    _runs.atomic_path = atomic_path
