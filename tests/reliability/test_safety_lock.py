"""Issue 22: one writer per output folder (`sam2sod.lock`): a second process gets one line naming the PID;
a lock of a dead process is taken over; sam2sod's own temp files never make a folder look foreign."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sam2sod.cli import main
from sam2sod.lock import LOCK, holder
from sam2sod.outputs import MARKER, prepare_output_dir

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

HOLD = ("import sys\nfrom sam2sod.outputs import prepare_output_dir\n"
        "prepare_output_dir(sys.argv[1], overwrite=False, inputs=[], command=sys.argv[2])\n"
        "print('locked', flush=True)\nsys.stdin.read()\n")


@pytest.fixture()
def hold():
    """hold(folder, command) -> a live process holding the lock on `folder`, as that command would."""
    procs = []

    def start(folder: Path, command: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), command], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_second_train_into_one_out_is_refused_naming_the_pid(hold, ds, tmp_path, capsys, one_error_line,
                                                             monkeypatch):
    import sam2sod.train.stages as stages_mod

    def boom(*a, **k):
        raise AssertionError("the second train started")

    monkeypatch.setattr(stages_mod, "run_training", boom)
    out = tmp_path / "run"
    first = hold(out, "train")
    assert holder(out)["pid"] == str(first.pid)
    assert main(["train", "--out", str(out), "--set", f"data.root={ds}", "--set", "device=cpu"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"pid {first.pid} on {socket.gethostname()}" in line and "in use by `sam2sod train`" in line, line
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, LOCK]), "the first run's folder is untouched"


def test_two_make_synthetic_into_one_folder_then_takeover_after_kill(hold, tmp_path, capsys, one_error_line):
    out = tmp_path / "synth"
    first = hold(out, "make-synthetic")
    assert main(["make-synthetic", str(out), "--n", "2", "--size", "16"]) == 2
    assert f"pid {first.pid}" in one_error_line(capsys.readouterr().err)
    assert not (out / "images").exists(), "nothing was blended into the first writer's folder"
    first.send_signal(signal.SIGKILL)  # dies holding the lock: its lock file stays, naming a dead PID
    first.wait()
    assert holder(out)["pid"] == str(first.pid)
    assert main(["make-synthetic", str(out), "--n", "2", "--size", "16"]) == 0, "a stale lock is taken over"
    assert len(list((out / "masks").iterdir())) == 2
    assert not (out / LOCK).exists(), "the lock is released when the command ends"


def test_a_lock_file_naming_a_dead_pid_is_stale(tmp_path, capsys):
    out = prepare_output_dir(tmp_path / "s", overwrite=False, inputs=[], command="make-synthetic")
    from sam2sod.outputs import finish_outputs

    finish_outputs()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (out / LOCK).write_text(f"pid={dead}\nhost={socket.gethostname()}\ncommand=make-synthetic\n")
    assert main(["make-synthetic", str(out), "--n", "2", "--size", "16"]) == 0


def test_own_temp_marker_does_not_look_foreign(tmp_path, capsys):
    """A writer killed mid-marker leaves `..sam2sod-output.XXXXXXXX.tmp`: the folder is still sam2sod's."""
    out = tmp_path / "s"
    out.mkdir()
    (out / f".{MARKER}.nserwm8s.tmp").write_text("")
    (out / LOCK).write_text("pid=1\nhost=elsewhere\ncommand=make-synthetic\n")
    assert main(["make-synthetic", str(out), "--n", "2", "--size", "16"]) == 0, capsys.readouterr().err


def test_a_lock_file_that_is_a_link_is_refused(tmp_path, capsys, one_error_line):
    out, victim = tmp_path / "s", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("user data\n")
    (out / LOCK).symlink_to(victim)
    assert main(["make-synthetic", str(out), "--n", "2", "--size", "16", "--overwrite"]) == 2
    assert "symbolic link" in one_error_line(capsys.readouterr().err)
    assert victim.read_text() == "user data\n"


def test_lock_is_reentrant_in_one_process(tmp_path):
    out = prepare_output_dir(tmp_path / "a", overwrite=False, inputs=[], command="score")
    assert prepare_output_dir(out, overwrite=False, inputs=[], command="score") == out
    assert holder(out)["pid"] == str(os.getpid())


def test_resume_takes_the_lock_too(hold, tmp_path, capsys, one_error_line, monkeypatch):
    import sam2sod.train.stages as stages_mod

    def boom(*a, **k):
        raise AssertionError("the second writer resumed")

    monkeypatch.setattr(stages_mod, "run_training", boom)
    run = tmp_path / "run"
    first = hold(run, "train")
    assert main(["train", "--resume", str(run)]) == 2
    assert f"pid {first.pid}" in one_error_line(capsys.readouterr().err)


def test_python_entry_points_release_their_locks_and_failed_folders(tmp_path):
    from sam2sod.errors import SodError
    from sam2sod.outputs import in_output_scope

    @in_output_scope
    def command(out: Path, fail: bool) -> Path:
        prepare_output_dir(out, overwrite=False, inputs=[], command="score")
        assert (out / LOCK).is_file()
        if fail:
            raise SodError("a problem found late")
        (out / "metrics.json").write_text("{}\n")
        return out

    ok = command(tmp_path / "ok", False)
    assert not (ok / LOCK).exists() and (ok / "metrics.json").is_file() and (ok / MARKER).is_file()
    with pytest.raises(SodError):
        command(tmp_path / "a" / "b", True)
    assert not (tmp_path / "a").exists()
