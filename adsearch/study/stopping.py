"""SIGTERM stops a study as the first Ctrl-C does.

A batch scheduler (SLURM at a time limit or preemption), Kubernetes deleting a pod, or `kill PID`
sends SIGTERM. Ray's driver installs handlers for it: in `ray.init` a Python one that exits at
once, then a C++ one that prints a stack dump and aborts the process (SIGABRT), before anything is
recorded. While a study runs (`graceful_sigterm`, from the CLI's first step), the first SIGTERM
does what the first Ctrl-C does instead (Tune's SIGINT handler inside a fit: the running trials
keep their last checkpoint, the experiment's state is saved, the study is reported as interrupted;
`KeyboardInterrupt` elsewhere, as while the study starts), and is remembered so the CLI exits 143
(128 + SIGTERM) instead of 130. A second SIGTERM ends the process at once (exit 143).

How: SIGTERM is blocked in the main thread for the whole block, so every thread and process
started in it (torch's, Ray's threads in the driver, a local Ray's GCS, raylet and workers: a signal
mask is inherited) has it blocked too, and no handler of Ray's ever sees it; one thread of ours
takes it with `sigtimedwait` and interrupts the main thread with SIGINT (after `ray.init`, when
one comes during it: `held`). A SIGTERM to the process
group (what a scheduler sends) so reaches the driver alone, and the local Ray it stops through
lives until `ray.shutdown()`, which SIGKILLs what its SIGTERM did not end. A thread started before
the block (none, from the CLI) may still take it: our Python handler then does the same, and
`held` puts it back after `ray.init` replaces it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

EXIT_CODE = 128 + signal.SIGTERM
"""The exit code of a study stopped by SIGTERM (143), as a shell reports a process it ended."""

_POLL_S = 0.1
"""How often the SIGTERM thread looks whether the block has ended."""


class _State:
    terminated = False
    """Whether this process has received a SIGTERM while a study ran."""
    undelivered = False
    """Whether that SIGTERM is still to be passed on to the main thread."""
    holding = 0
    """How many `held` blocks the main thread is in."""
    active = False
    """Whether a `graceful_sigterm` block is running (an inner one changes nothing)."""
    lock = threading.Lock()


def terminated() -> bool:
    """Whether a SIGTERM stopped the study this process ran."""
    return _State.terminated


def _deliver() -> None:
    """Pass the first SIGTERM on to the main thread as Ctrl-C, once it is not in a `held` block and
    Ctrl-C is not ignored there."""
    with _State.lock:
        if not _State.undelivered or _State.holding or not callable(signal.getsignal(signal.SIGINT)):
            return
        _State.undelivered = False
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _on_sigterm(signum, frame) -> None:
    """The Python handler, for a SIGTERM a thread started before the block took (in the main thread)."""
    if _State.terminated:
        os._exit(EXIT_CODE)
    _State.terminated = True
    if _State.holding:
        _State.undelivered = True
        return
    interrupt = signal.getsignal(signal.SIGINT)
    if callable(interrupt):  # Tune's graceful stop inside a fit, else `default_int_handler`
        interrupt(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def _take_sigterms(done: threading.Event) -> None:
    while not done.is_set():
        if signal.sigtimedwait({signal.SIGTERM}, _POLL_S) is not None:
            if _State.terminated:  # the second: no more grace
                os._exit(EXIT_CODE)
            _State.terminated = _State.undelivered = True
        _deliver()


@contextlib.contextmanager
def held() -> Iterator[None]:
    """For work that must not be cut midway, such as `ray.init` (a half-started Ray): a SIGTERM that
    comes while the block runs (in the main thread) stops it only once it ends, as a
    `KeyboardInterrupt` there (raised inside, `ray.init`'s forks would also swallow it).

    SIGTERM is blocked in this thread meanwhile, so the processes the block starts keep it blocked
    (a signal mask is inherited across fork and exec): a SIGTERM to the process group reaches the
    driver, which stops the study gracefully, and not a local Ray's GCS, raylet and workers, which
    the stop still needs (Ray does the same for SIGINT); `ray.shutdown()` ends them still (SIGKILL
    after its SIGTERM's wait). Inside `graceful_sigterm` it is blocked already; this also covers a
    Ray started outside one. The block's Python SIGTERM handler is put back as it ends (`ray.init`
    installs its own, which exits at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    with _State.lock:
        _State.holding += 1
    try:
        yield
    finally:
        if handler is not None:  # None: not set from Python, nothing to put back
            signal.signal(signal.SIGTERM, handler)
        with _State.lock:
            _State.holding -= 1
            stop = not _State.holding and _State.undelivered
            if stop:
                _State.undelivered = False
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if stop:
            raise KeyboardInterrupt


@contextlib.contextmanager
def graceful_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM is a graceful stop (see the module doc);
    outside the main thread, or inside another such block, it changes nothing. A SIGTERM still
    pending as the block ends ends the process (the default action)."""
    if _State.active or threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.active, _State.terminated, _State.undelivered = True, False, False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # a background job of a script starts with Ctrl-C ignored; Tune's fit catches it regardless,
    # and the rest of the study needs it caught to stop on a SIGTERM
    interrupt = signal.getsignal(signal.SIGINT)
    if not callable(interrupt):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _taken_by_a_thread():
            yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if not callable(interrupt) and interrupt is not None:
            signal.signal(signal.SIGINT, interrupt)
        _State.active = False


@contextlib.contextmanager
def _taken_by_a_thread() -> Iterator[None]:
    """SIGTERM blocked here, and so in every thread and process started meanwhile, and taken by a
    thread of ours (`_take_sigterms`). Without `sigtimedwait` (macOS) our Python handler alone
    takes it, and Ray's, installed by `ray.init`, may come first."""
    if not hasattr(signal, "sigtimedwait"):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    done = threading.Event()
    taker = threading.Thread(target=_take_sigterms, args=(done,), name="adsearch-sigterm", daemon=True)
    taker.start()
    try:
        yield
    finally:
        done.set()
        taker.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
