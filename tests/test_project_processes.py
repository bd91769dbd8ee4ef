"""The project store across real processes: SIGKILL mid-burst, and a second writer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tagger_gui.core.errors import ProjectLockedError
from tagger_gui.core.project import VALUES, Project
from tagger_gui.core.tasks import run_task

from .conftest import write_audio

# Labels in a burst: tag t<i> is created (i counts on from the number of
# tags), then labelled (one track, or every track in one bulk action);
# "<i> <action id>" is printed once set_labels has returned, i.e. once the
# label is confirmed to the user.
BURST = textwrap.dedent(
    """
    import sys
    from tagger_gui.core.project import VALUES, Project

    p = Project.open(sys.argv[1])
    ids = p.tracks().id.tolist()
    i = len(p.tags())
    while True:
        tag = p.create_tag(f"t{i}")
        tracks = ids if i % 5 == 0 else [ids[i % len(ids)]]
        result = p.set_labels(tag, tracks, VALUES[i % 3])
        print(i, result.action_id, flush=True)
        i += 1
    """
)

# Holds the project open for writing; labels a track when told to on stdin.
HOLDER = textwrap.dedent(
    """
    import sys
    from tagger_gui.core.project import Project

    p = Project.open(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        p.set_labels("jazz", [int(line)], "positive")
        print("labelled", flush=True)
    """
)


def expected(i: int, ids: list[int]) -> dict[int, str]:
    tracks = ids if i % 5 == 0 else [ids[i % len(ids)]]
    return dict.fromkeys(tracks, VALUES[i % 3])


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "Music"
    for k in range(4):
        write_audio(root / f"{k}.wav", 0.2, seed=k)
    with Project.create(None, root) as p:
        run_task(p.sync_library())
        p.create_tag("jazz")
    return root / ".tagger"


def start(code: str, project_dir: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(project_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.parametrize("burst", [60, 150, 300])
def test_sigkill_mid_burst_loses_no_confirmed_label(project_dir: Path, burst: int):
    confirmed: dict[int, int] = {}
    for _round in range(2):
        proc = start(BURST, project_dir)
        try:
            first = None
            for line in proc.stdout:
                i, action = map(int, line.split())
                first = i if first is None else first
                confirmed[i] = action
                if i - first >= burst:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        finally:
            proc.kill()
            rest, err = proc.communicate(timeout=30)
        # lines printed before the kill but not read yet are confirmed too
        for line in rest.splitlines():
            if line.strip():
                i, action = map(int, line.split())
                confirmed[i] = action
        assert proc.returncode == -signal.SIGKILL, err
        assert len(confirmed) > burst

        with Project.open(project_dir) as p:
            assert p.check() == []
            ids = p.tracks().id.tolist()
            for i, action in confirmed.items():
                got = p.labels(f"t{i}", hierarchy=False).as_dict()
                assert got == expected(i, ids), f"label {i} (action {action}) lost"
            states = dict(p._conn.execute("SELECT id, state FROM actions"))
            assert all(states[a] == "done" for a in confirmed.values())


def test_a_second_writer_is_told_who_has_the_project(project_dir: Path):
    holder = start(HOLDER, project_dir, stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
        with pytest.raises(ProjectLockedError) as info:
            Project.open(project_dir)
        message = str(info.value)
        assert f"project is open elsewhere (pid {holder.pid} on host {socket.gethostname()})" in (
            message
        )
        # reading works while the other process writes, and sees its commits
        with Project.open(project_dir, readonly=True) as ro:
            assert len(ro.labels("jazz")) == 0
            holder.stdin.write("2\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "labelled"
            assert ro.labels("jazz").as_dict() == {2: "positive"}
        # the OS drops the lock of a process that dies
        holder.kill()
        holder.wait(timeout=30)
        with Project.open(project_dir) as p:
            assert p.labels("jazz").as_dict() == {2: "positive"}
    finally:
        holder.kill()
        holder.communicate(timeout=30)


def test_a_second_writer_in_the_same_process(project_dir: Path):
    with Project.open(project_dir):
        with pytest.raises(ProjectLockedError, match=f"pid {os.getpid()}"):
            Project.open(project_dir)
        Project.open(project_dir, readonly=True).close()
    Project.open(project_dir).close()
