"""Fixtures for the Qt tests (in the spirit of napari's conftest).

Every Qt test gets fresh settings in a temporary folder, so no test reads or
writes the real user's settings, and fails if it leaves a thread running: a
worker that outlives its test would send signals into the next one.
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QSettings, QThread, QThreadPool

from tagger_gui.qt.worker import WorkerPool

# how long a thread may take to wind down after its test before it counts as left running
GRACE_MS = 1000
# how long teardown then waits for it, so the next test starts clean
CLEANUP_MS = 10_000

TEST_ORGANIZATION = "tagger-gui-tests"
TEST_APPLICATION = "tagger-gui-tests"


@pytest.fixture(autouse=True)
def _fresh_settings(tmp_path: Path) -> Iterator[Path]:
    """Point QSettings at a temporary folder, under test organisation/application names."""
    folder = tmp_path / "qsettings"
    folder.mkdir()
    names = (
        QCoreApplication.organizationName(),
        QCoreApplication.organizationDomain(),
        QCoreApplication.applicationName(),
    )
    default_format = QSettings.defaultFormat()
    QCoreApplication.setOrganizationName(TEST_ORGANIZATION)
    QCoreApplication.setOrganizationDomain("tests.invalid")
    QCoreApplication.setApplicationName(TEST_APPLICATION)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(folder))
    yield folder
    QSettings.setDefaultFormat(default_format)
    QCoreApplication.setOrganizationName(names[0])
    QCoreApplication.setOrganizationDomain(names[1])
    QCoreApplication.setApplicationName(names[2])


def dangling_threads(
    pools: dict[QThreadPool, str], threads: dict[QThread, str], grace_ms: int = GRACE_MS
) -> list[str]:
    """Descriptions of the pools with a task still running and the threads still running.

    Each is given ``grace_ms`` to finish first. The strings hold the stack of
    the call that started them, to find the test's leak.
    """
    left = []
    for pool, where in list(pools.items()):
        if not pool.waitForDone(grace_ms) and pool.activeThreadCount():
            left.append(f"a QThreadPool still runs {pool.activeThreadCount()} task(s):\n{where}")
    for thread, where in list(threads.items()):
        try:
            running = thread.isRunning() and not thread.wait(grace_ms)
        except RuntimeError:  # the C++ object is gone: not running
            continue
        if running:
            left.append(f"a QThread is still running:\n{where}")
    return left


@pytest.fixture(autouse=True)
def _dangling_threads(qapp, monkeypatch) -> Iterator[None]:
    """Fail a test that leaves a pool task or a QThread running.

    ``QThreadPool.start`` and ``QThread.start`` are wrapped to remember what
    the test started (and where); after the test each gets a short grace
    period, then the test fails with the stack of the call that started it.
    """
    pools: weakref.WeakKeyDictionary[QThreadPool, str] = weakref.WeakKeyDictionary()
    threads: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
    pool_start, thread_start = QThreadPool.start, QThread.start

    def start_in_pool(self, *args, **kwargs):
        pools[self] = "".join(traceback.format_stack(limit=8)[:-1])
        return pool_start(self, *args, **kwargs)

    def start_thread(self, *args, **kwargs):
        threads[self] = "".join(traceback.format_stack(limit=8)[:-1])
        return thread_start(self, *args, **kwargs)

    monkeypatch.setattr(QThreadPool, "start", start_in_pool)
    monkeypatch.setattr(QThread, "start", start_thread)
    yield
    left = dangling_threads(dict(pools), dict(threads))
    for pool in list(pools.keys()):
        pool.waitForDone(CLEANUP_MS)
    for thread in list(threads.keys()):
        try:
            thread.quit()
            thread.wait(CLEANUP_MS)
        except RuntimeError:
            pass
    # deliver the last queued signals here, not in the next test
    qapp.processEvents()
    if left:
        pytest.fail("the test left threads running:\n\n" + "\n\n".join(left), pytrace=False)


@pytest.fixture
def worker_pool(qapp) -> Iterator[WorkerPool]:
    """A :class:`WorkerPool` of the app; a test must wait for its workers to finish.

    Teardown fails the test if a worker still runs after a short grace
    period, then shuts the pool down so the next test starts clean.
    """
    pool = WorkerPool(interactive_threads=2)
    yield pool
    done = pool.wait_for_workers(GRACE_MS)
    pool.shutdown(CLEANUP_MS)
    qapp.processEvents()
    if not done:
        pytest.fail("the test left a worker running", pytrace=False)
