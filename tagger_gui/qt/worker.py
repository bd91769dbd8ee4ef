"""The Qt layer's one worker API: core generator tasks run on thread pools.

A core task is a generator that yields progress and returns its result
(:mod:`tagger_gui.core.tasks`). :class:`TaskWorker` runs one on a
``QThreadPool`` thread and turns it into fixed signals delivered to the main
thread; :class:`WorkerPool` holds the app's pools (interactive work, and the
single background thread that writes the HDF5 cache) and waits for them on
quit; :class:`LatestOnly` debounces bursts of requests and lets only the
newest one's result through (live refits).

Widgets are never touched off the main thread: the worker thread only emits
signals of a helper object, which Qt queues to the main thread, where
:class:`TaskWorker` re-emits them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, QTimer, Signal, Slot

from ..core.errors import TaggerError

__all__ = [
    "LatestOnly",
    "TaskWorker",
    "WorkerPool",
    "describe_error",
]

logger = logging.getLogger(__name__)

TaskFactory = Callable[[], Generator[Any, None, Any]]


def describe_error(exc: BaseException) -> str:
    """A message for the user that says what went wrong, in plain words.

    Parameters
    ----------
    exc : BaseException
        The exception a task raised (what :attr:`TaskWorker.error` carries).

    Returns
    -------
    str
        The message of our own errors (:class:`~tagger_gui.core.errors.TaggerError`
        messages are written for the user); for any other exception its type
        name and message, since a bare "list index out of range" says nothing.
    """
    message = str(exc).strip()
    if isinstance(exc, TaggerError) and message:
        return message
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


class _Relay(QObject):
    """Signals emitted from the worker thread; Qt queues them to the main thread."""

    started = Signal()
    progress = Signal(object)
    result = Signal(object)
    error = Signal(object)
    cancelled = Signal()
    finished = Signal()


#: Nice value of the pools' threads (Linux schedules threads one by one): on a
#: two-core machine a refit or a decode must not keep the GUI thread waiting
#: for a CPU.
WORKER_THREAD_NICENESS = 5
_lowered = threading.local()


def _lower_thread_priority() -> None:
    """Lower this pool thread's CPU priority, once (a no-op where not supported)."""
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_THREAD_NICENESS
        )


class _Runnable(QRunnable):
    """Drives one generator in a pool thread, checking for cancellation at each yield.

    It holds the relay and the generator, never the :class:`TaskWorker`, so a
    QObject living in the main thread is never released from a pool thread.
    """

    def __init__(self, task: Generator[Any, None, Any], relay: _Relay, cancel: threading.Event):
        super().__init__()
        self._task = task
        self._relay = relay
        self._cancel = cancel

    def run(self) -> None:
        _lower_thread_priority()
        relay, task = self._relay, self._task
        relay.started.emit()
        try:
            while not self._cancel.is_set():
                try:
                    value = next(task)
                except StopIteration as stop:
                    relay.result.emit(stop.value)
                    return
                if self._cancel.is_set():
                    break
                relay.progress.emit(value)
            # close() raises GeneratorExit at the yield, so the task's finally
            # blocks release what they hold (a process pool, the HDF5 cache)
            task.close()
            relay.cancelled.emit()
        except BaseException as exc:  # reported, never swallowed
            logger.error("background task failed: %s", describe_error(exc), exc_info=exc)
            try:
                task.close()
            except BaseException:  # the first error is the one to show
                logger.exception("closing a failed task raised too")
            relay.error.emit(exc)
        finally:
            self._task = None  # drop the generator's frames in this thread, not later
            relay.finished.emit()


class TaskWorker(QObject):
    """Runs one core generator task on a thread pool and reports through signals.

    Every signal is delivered in the main thread, so slots may update widgets.
    Signals of one worker come in this order: ``started``, then ``progress``
    for each value the task yields, then one of ``result`` (the task
    returned), ``error`` (it raised) or ``cancelled``, and ``finished`` last,
    always.

    Parameters
    ----------
    task : generator
        A core task, already created but not started (e.g.
        ``refit_task(lib, y, tag="calm")``): creating a generator runs none of
        its code, so nothing happens in the main thread.
    parent : QObject, optional
        The Qt parent.

    Notes
    -----
    :meth:`cancel` is honoured at the task's next yield: the generator is then
    closed, which runs its ``finally`` blocks, and ``cancelled`` is emitted
    instead of ``result``. A task that had already returned when
    :meth:`cancel` was called still reports its result (as superqt's
    ``GeneratorWorker`` does); :class:`LatestOnly` drops such stale results.

    Examples
    --------
    >>> worker = TaskWorker(refit_task(lib, y, tag="calm"))  # doctest: +SKIP
    >>> worker.progress.connect(status_bar.showMessage)  # doctest: +SKIP
    >>> worker.result.connect(show_ranking)  # doctest: +SKIP
    >>> pool.start(worker)  # doctest: +SKIP
    """

    started = Signal()
    progress = Signal(object)
    result = Signal(object)
    error = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, task: Generator[Any, None, Any], parent: QObject | None = None):
        super().__init__(parent)
        self._task: Generator[Any, None, Any] | None = task
        self._cancel = threading.Event()
        self._running = False
        self._done = False
        self._relay = _Relay(self)
        # explicit: the relay emits from a pool thread; slots run in the main thread
        queued = Qt.ConnectionType.QueuedConnection
        self._relay.started.connect(self._on_started, queued)
        self._relay.progress.connect(self.progress, queued)
        self._relay.result.connect(self.result, queued)
        self._relay.error.connect(self.error, queued)
        self._relay.cancelled.connect(self.cancelled, queued)
        self._relay.finished.connect(self._on_finished, queued)

    # -- state, as seen from the main thread ---------------------------------
    @property
    def is_running(self) -> bool:
        """True from :meth:`start` until ``finished`` has been delivered."""
        return self._running

    @property
    def is_finished(self) -> bool:
        """True once ``finished`` has been delivered."""
        return self._done

    @property
    def is_cancel_requested(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._cancel.is_set()

    # -- control ---------------------------------------------------------------
    def start(self, pool: QThreadPool, priority: int = 0) -> None:
        """Queue the task on ``pool``; prefer :meth:`WorkerPool.start`.

        Parameters
        ----------
        pool : QThreadPool
            The pool whose thread runs the task.
        priority : int, optional
            The runnable's priority in the pool's queue.

        Raises
        ------
        RuntimeError
            If the worker was already started (a generator runs once).
        """
        if self._task is None:
            raise RuntimeError("a TaskWorker runs its task once; make a new worker")
        runnable = _Runnable(self._task, self._relay, self._cancel)
        self._task = None
        self._running = True
        pool.start(runnable, priority)

    @Slot()
    def cancel(self) -> None:
        """Ask the task to stop at its next yield (thread-safe, returns at once)."""
        self._cancel.set()

    # -- relay slots (main thread) ---------------------------------------------
    @Slot()
    def _on_started(self) -> None:
        self.started.emit()

    @Slot()
    def _on_finished(self) -> None:
        self._running = False
        self._done = True
        self.finished.emit()


class WorkerPool(QObject):
    """The app's thread pools and the workers running on them.

    Two pools, as Picard keeps separate pools per kind of work: an
    *interactive* pool for refits and quality estimates, and a *background*
    pool of exactly one thread for the embedding job, the only writer of the
    HDF5 cache. The app calls :meth:`shutdown` on quit.

    Parameters
    ----------
    interactive_threads : int, optional
        Threads of the interactive pool; default ``min(4, max(2, cores // 2))``
        (a refit already uses several cores through BLAS).
    parent : QObject, optional
        The Qt parent.
    """

    def __init__(self, *, interactive_threads: int | None = None, parent: QObject | None = None):
        super().__init__(parent)
        if interactive_threads is None:
            interactive_threads = min(4, max(2, QThread.idealThreadCount() // 2))
        self.interactive = QThreadPool(self)
        self.interactive.setMaxThreadCount(int(interactive_threads))
        self.background = QThreadPool(self)
        self.background.setMaxThreadCount(1)  # the single HDF5 writer
        self._workers: set[TaskWorker] = set()
        self._shut_down = False

    @property
    def is_shut_down(self) -> bool:
        """True once :meth:`shutdown` was called; :meth:`start` then refuses work."""
        return self._shut_down

    def start(self, worker: TaskWorker, *, background: bool = False) -> TaskWorker:
        """Run ``worker`` on the interactive pool, or on the background one.

        The pool keeps the worker alive until its ``finished`` is delivered,
        so callers need not hold a reference.

        Parameters
        ----------
        worker : TaskWorker
            A worker not started yet; connect its signals first.
        background : bool, optional
            Run on the one-thread background pool (the embedding job).

        Returns
        -------
        TaskWorker
            ``worker``, for chaining.

        Raises
        ------
        RuntimeError
            If the pool was shut down, or the worker already started.
        """
        if self._shut_down:
            raise RuntimeError("the worker pool is shut down (the app is quitting)")
        worker.start(self.background if background else self.interactive)
        # its signals are queued to this thread, so connecting after start is safe
        self._workers.add(worker)
        # a weak reference: a closure holding the worker it is connected to
        # would keep it alive for ever (the connection lives as long as the worker)
        ref = weakref.ref(worker)
        worker.finished.connect(lambda: self._release(ref))
        return worker

    def _release(self, ref: weakref.ref[TaskWorker]) -> None:
        # one event-loop turn after finished, so a worker is never destroyed
        # inside the delivery of its own signal
        QTimer.singleShot(0, self, lambda: self._workers.discard(ref()))

    def active_workers(self) -> list[TaskWorker]:
        """The workers started here whose ``finished`` has not been delivered yet."""
        return [w for w in self._workers if not w.is_finished]

    def active_thread_count(self) -> int:
        """Threads of both pools currently running a task."""
        return self.interactive.activeThreadCount() + self.background.activeThreadCount()

    def wait_for_workers(self, timeout_ms: int = -1) -> bool:
        """Block until every task on both pools has returned, or ``timeout_ms`` passed.

        Parameters
        ----------
        timeout_ms : int, optional
            Milliseconds to wait in all; negative waits without limit.

        Returns
        -------
        bool
            True if no task is running any more.

        Notes
        -----
        The workers' last signals are still queued when this returns; they
        are delivered when the event loop runs again.
        """
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        for pool in (self.interactive, self.background):
            if deadline is None:
                pool.waitForDone(-1)
            elif not pool.waitForDone(max(0, int((deadline - time.monotonic()) * 1000))):
                return False
        return self.active_thread_count() == 0

    def cancel_all(self) -> None:
        """Ask every running worker to stop at its next yield."""
        for worker in list(self._workers):
            worker.cancel()

    def shutdown(self, timeout_ms: int = -1) -> bool:
        """Cancel every worker, refuse new ones, and wait for them to stop (on quit).

        Parameters
        ----------
        timeout_ms : int, optional
            Milliseconds to wait; negative waits without limit. A task stops
            at its next yield, so the wait is one step of the slowest task.

        Returns
        -------
        bool
            True if every task has stopped.
        """
        self._shut_down = True
        self.cancel_all()
        done = self.wait_for_workers(timeout_ms)
        if not done:
            logger.warning("%d background task(s) still running at shutdown", len(self._workers))
        return done


class LatestOnly(QObject):
    """The newest request wins: debounced submits, only the latest result emitted.

    Each :meth:`submit` replaces the pending request and restarts a
    single-shot timer; when it fires (``delay_ms`` after the last submit of a
    burst), the worker in flight is cancelled and the newest request starts.
    Only the newest request's ``progress``, ``result`` and ``error`` are
    re-emitted: a superseded worker that finishes late is ignored (its errors
    are logged).

    Parameters
    ----------
    pool : WorkerPool
        Where the requests run.
    delay_ms : int, optional
        The debounce delay (the trailing edge of a burst). Default 150.
    background : bool, optional
        Run on the background pool instead of the interactive one.
    parent : QObject, optional
        The Qt parent.

    Notes
    -----
    The factory is called in the main thread when the timer fires, so it
    should capture the request's inputs at submit time (e.g. a copy of the
    labels), not read mutable state later.

    Examples
    --------
    >>> live = LatestOnly(pool)  # doctest: +SKIP
    >>> live.result.connect(show_ranking)  # doctest: +SKIP
    >>> y = labels.copy()  # doctest: +SKIP
    >>> live.submit(lambda: refit_task(lib, y, tag="calm"))  # doctest: +SKIP
    """

    result = Signal(object)
    progress = Signal(object)
    error = Signal(object)
    busy = Signal(bool)

    def __init__(
        self,
        pool: WorkerPool,
        *,
        delay_ms: int = 150,
        background: bool = False,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._pool = pool
        self._background = background
        self._pending: TaskFactory | None = None
        self._current: TaskWorker | None = None
        self._busy = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(delay_ms))
        self._timer.timeout.connect(self._fire)

    @property
    def delay_ms(self) -> int:
        """The debounce delay in milliseconds."""
        return self._timer.interval()

    @property
    def is_busy(self) -> bool:
        """True while a request is pending or the newest one is running."""
        return self._busy

    @property
    def current(self) -> TaskWorker | None:
        """The worker of the newest request, while it runs."""
        return self._current

    def submit(self, task_factory: TaskFactory) -> None:
        """Request a run of ``task_factory()``, replacing any pending request.

        Parameters
        ----------
        task_factory : callable
            Called with no argument when the debounce timer fires; returns the
            generator task to run.
        """
        self._pending = task_factory
        self._timer.start()  # restarts: a burst runs once, after its last submit
        self._set_busy(True)

    def flush(self) -> None:
        """Start the pending request now instead of after the delay."""
        if self._pending is not None:
            self._timer.stop()
            self._fire()

    def cancel(self) -> None:
        """Drop the pending request and cancel the one in flight."""
        self._timer.stop()
        self._pending = None
        if self._current is not None:
            self._current.cancel()
            self._current = None
        self._set_busy(False)

    @Slot()
    def _fire(self) -> None:
        factory, self._pending = self._pending, None
        if factory is None:
            return
        if self._current is not None:
            self._current.cancel()
            self._current = None
        if self._pool.is_shut_down:
            self._set_busy(False)
            return
        try:
            task = factory()
        except Exception as exc:  # shown to the user like a task's error
            logger.error("could not create the task: %s", describe_error(exc), exc_info=exc)
            self._set_busy(False)
            self.error.emit(exc)
            return
        worker = TaskWorker(task)
        ref = weakref.ref(worker)  # closures must not keep their worker alive
        worker.progress.connect(lambda value: self._forward(ref(), self.progress, value))
        worker.result.connect(lambda value: self._forward(ref(), self.result, value))
        worker.error.connect(lambda exc: self._on_error(ref(), exc))
        worker.finished.connect(lambda: self._on_finished(ref()))
        self._current = worker
        self._pool.start(worker, background=self._background)

    def _forward(self, worker: TaskWorker | None, signal: Any, value: object) -> None:
        if worker is not None and worker is self._current:
            signal.emit(value)

    def _on_error(self, worker: TaskWorker | None, exc: BaseException) -> None:
        if worker is not None and worker is self._current:
            self.error.emit(exc)
        else:
            logger.warning("a superseded task failed: %s", describe_error(exc))

    def _on_finished(self, worker: TaskWorker | None) -> None:
        if worker is not None and worker is self._current:
            self._current = None
            if self._pending is None:
                self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy.emit(busy)
