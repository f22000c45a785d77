"""SIGTERM stops a study as the first Ctrl-C does.

A batch scheduler (SLURM at a time limit or preemption), Kubernetes deleting a pod, or `kill PID`
sends SIGTERM. Ray's driver installs a C++ handler for it that prints a stack dump and aborts the
process (SIGABRT) before anything is recorded. While a study runs, `graceful_sigterm` replaces it
(after `ray.init`, which installs Ray's) with ours: the first SIGTERM does what the first Ctrl-C
does (Tune's SIGINT handler inside a fit: the running trials keep their last checkpoint, the
experiment's state is saved, the study is reported as interrupted; `KeyboardInterrupt` elsewhere),
and is remembered so the CLI exits 143 (128 + SIGTERM) instead of 130. A second SIGTERM ends the
process at once, by the signal's default action.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

EXIT_CODE = 128 + signal.SIGTERM
"""The exit code of a study stopped by SIGTERM (143), as a shell reports a process it ended."""


class _State:
    terminated = False
    """Whether this process has received a SIGTERM while a study ran."""


def terminated() -> bool:
    """Whether a SIGTERM stopped the study this process ran."""
    return _State.terminated


def _on_sigterm(signum, frame) -> None:
    if _State.terminated:  # the second: no more grace
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
        return
    _State.terminated = True
    interrupt = signal.getsignal(signal.SIGINT)
    if callable(interrupt):  # Tune's graceful stop inside a fit, else `default_int_handler`
        interrupt(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def graceful_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread, after Ray has started), SIGTERM is a graceful stop;
    outside the main thread it changes nothing. Ray's handler is not put back afterwards: what is
    left of the process is ours to stop, and the default action (exit) is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.terminated = False
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        if not _State.terminated and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # once stopping, ours stays: a second SIGTERM ends it
