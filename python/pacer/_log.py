"""The C++ engine's log lines through `logging.getLogger("pacer")`.

The engine logs on its own I/O threads (a Redis connection refused, a Sentinel failover), which
never touch Python: each line is queued in C++ (`_pacer.LogQueue`, python/src/log_queue.h). One
daemon thread here waits for lines without the GIL and passes them to `logging`, holding it. No
engine thread ever waits for the GIL, so a thread holding the GIL while it waits on the engine,
and interpreter exit, cannot deadlock with a line being logged (docs/DESIGN.md §10).

The thread starts with the first engine; at exit it is stopped after the engines (so their last
lines still arrive), and the engine's lines go to stderr again. A forked child starts its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any, List, Optional

from . import _pacer

logger = logging.getLogger("pacer")

_LEVELS = {
    _pacer.LogLevel.TRACE: 5,
    _pacer.LogLevel.DEBUG: logging.DEBUG,
    _pacer.LogLevel.INFO: logging.INFO,
    _pacer.LogLevel.WARNING: logging.WARNING,
    _pacer.LogLevel.ERROR: logging.ERROR,
    _pacer.LogLevel.CRITICAL: logging.CRITICAL,
}
_WAIT_MS = 1000

_lock = threading.Lock()
_stopping = threading.Event()
_queue: Any = None
_thread: Optional[threading.Thread] = None
# Queues of a parent process, kept in a forked child: a thread of the parent may have held their
# lock at the fork, so they are never used or destroyed here.
_inherited: List[Any] = []


def _run(queue: Any) -> None:
    # The flag is checked before each wait: a thread that stop() gave up on (a logging handler
    # slower than its timeout) must not wait in the engine again while the interpreter exits.
    while not _stopping.is_set():
        lines = queue.wait(_WAIT_MS)
        if lines is None:
            return
        for level, message in lines:
            try:
                logger.log(_LEVELS.get(level, logging.WARNING), "%s", message)
            except Exception:  # a logging handler that raises must not end the thread
                pass


def start() -> None:
    """Sends the engine's log lines to `logging` (idempotent)."""
    global _queue, _thread
    if _thread is not None:
        return
    with _lock:
        if _thread is not None:
            return
        _stopping.clear()
        _queue = _pacer._install_log_queue()
        thread = threading.Thread(target=_run, args=(_queue,), name="pacer-log", daemon=True)
        thread.start()
        _thread = thread


def stop(timeout: float = 2.0) -> None:
    """Delivers what is queued, stops the thread; the engine's lines go to stderr again."""
    global _queue, _thread
    with _lock:
        queue, thread = _queue, _thread
        _queue = _thread = None
        if queue is None:
            return
        _pacer._remove_log_queue()
        queue.stop()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)
        if thread.is_alive():  # held up by a logging handler: let it end after this batch
            _stopping.set()


def _after_fork_in_child() -> None:
    # The parent's thread does not exist here; the next engine installs a queue of its own.
    global _lock, _queue, _stopping, _thread
    _lock = threading.Lock()
    _stopping = threading.Event()
    if _queue is not None:
        _inherited.append(_queue)
    _queue = _thread = None


os.register_at_fork(after_in_child=_after_fork_in_child)
# Registered before the limiter's own exit handler, so it runs after it (atexit is last in,
# first out): the lines of engines shutting down at exit still reach `logging`.
atexit.register(stop)
