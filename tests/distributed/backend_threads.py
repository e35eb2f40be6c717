"""What a program run under torchrun checks as it ends: no thread of gloo outlives its process group.

A gloo worker thread alive at interpreter shutdown can abort the process ("terminate called without an
active exception"): when it drops a finished collective whose tensors have Python objects, it needs the
GIL, Python ends the thread instead, and that unwinds a C++ destructor. `close_distributed` frees the
group (and joins those threads) while Python runs; this check makes a group kept alive by something a
failure every time, not a rare abort under load.
"""

import os
import sys

GLOO_THREADS = ("pt_gloo_runloop", "gloo_tcp_loop")


def backend_threads() -> list[str]:
    """The names of this process's gloo threads (Linux's /proc/self/task; none where it is missing)."""
    names = []
    task = "/proc/self/task"
    for tid in os.listdir(task) if os.path.isdir(task) else ():
        try:
            with open(f"{task}/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(n for n in names if n in GLOO_THREADS)


def check_backend_threads_gone() -> None:
    """End the process with status 3 when gloo threads are still running (after the group was closed).

    `os._exit`, so the failure also shows from an atexit handler, whose exceptions do not change the status.
    """
    left = backend_threads()
    if left:
        print(f"the process group was closed but its gloo threads still run: {left}", file=sys.stderr, flush=True)
        os._exit(3)
