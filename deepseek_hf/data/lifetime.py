"""Every process of a local run ends when the run's main process dies, even by `kill -9`.

A local run has more processes than its main one: datatrove's `multiprocess.Manager` server (forked from the main
process), the forkserver (started by it), the worker pool (forked *from the forkserver*) and the resource tracker.
Killed with SIGKILL, the main process can clean none of them up: the workers keep a stage's task running, writing
into the run folder; the manager waits for clients forever; the forkserver stays while a worker holds its "alive"
pipe, and the resource tracker while anyone holds its pipe.

Chosen: a watchdog thread in each of them but the resource tracker, waiting on the main process (a Linux pidfd: woken by the
kernel the moment it exits, no polling; elsewhere a 1 s poll), then ending its process with `os._exit`. Not
`PR_SET_PDEATHSIG`: it signals on the death of the *parent*, and a worker's parent is the forkserver, which outlives
the main process exactly as long as the worker does. The main process's pid travels in an environment variable
(set by `run_pipeline` for the run, inherited by the forkserver and by every fork); the watchdog starts in every
forked child (`os.register_at_fork`) and in any process that imports this module (the forkserver preloads the
pipeline; spawned workers import it to unpickle their steps). The resource tracker then exits by itself, its pipe
closed by all the others. An interrupted run resumes on its next start: datatrove re-runs the unfinished tasks, each
rewriting its own shards.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time

MAIN_PID_ENV = "DEEPSEEK_HF_DATA_MAIN_PID"
EXIT_CODE = 70  # what a watched process exits with once the run's main process is gone
_watching: set[int] = set()  # pids of this interpreter that already run a watchdog (fork copies the set)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers signal 0: it has exited
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_for_exit(pid: int) -> None:
    """Block until process `pid` has exited."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or already gone
        while _is_alive(pid):
            time.sleep(1.0)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(fd)


def _watch(pid: int) -> None:
    _wait_for_exit(pid)
    os._exit(EXIT_CODE)  # silently: after a normal exit of the main process the forkserver gets here too


def watch_main_process() -> None:
    """In a process of a run other than its main one: start the watchdog (once per process)."""
    value = os.environ.get(MAIN_PID_ENV, "")
    if not value.isdigit() or int(value) == os.getpid() or os.getpid() in _watching:
        return
    _watching.add(os.getpid())
    threading.Thread(target=_watch, args=(int(value),), name="main-process-watchdog", daemon=True).start()


@contextlib.contextmanager
def run_scope():
    """Marks this process as the main process of a run for the processes it starts meanwhile."""
    previous = os.environ.get(MAIN_PID_ENV)
    os.environ[MAIN_PID_ENV] = str(os.getpid())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MAIN_PID_ENV, None)
        else:
            os.environ[MAIN_PID_ENV] = previous


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=watch_main_process)
watch_main_process()
