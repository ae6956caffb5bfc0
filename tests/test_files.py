"""Atomic writes: complete or absent, whatever stops them, and every unwritable target in one sentence."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nst_lib.files import WriteError, atomic_write, check_folder, check_writable

# Writes half a file, then stops itself with the signal named on its command line, in the middle of the write.
STOPPED_WRITER = """
import os, signal, sys, time
from nst_lib.files import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write(b"half of the new content")
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    time.sleep(5)
    handle.write(b" and the rest")
"""


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder that takes no new files: a read-only one, or (as root, who may write anywhere) /sys."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for folder in (locked, Path("/sys")):
        try:
            (folder / "probe").touch()
            (folder / "probe").unlink()
        except OSError:
            return folder
    pytest.skip("no folder here refuses new files")


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_write_stopped_by_a_signal_keeps_the_old_file_and_no_temporary_one(tmp_path, name):
    target = tmp_path / "picture.png"
    target.write_bytes(b"the old content")
    done = subprocess.run([sys.executable, "-c", STOPPED_WRITER, str(target), name], capture_output=True, timeout=60)
    assert done.returncode != 0
    assert "KeyboardInterrupt" in done.stderr.decode() or "Terminated" in done.stderr.decode()
    assert target.read_bytes() == b"the old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.png"]  # no .picture.png.*.part


def test_the_sigterm_handler_is_only_borrowed_for_the_write(tmp_path):
    with atomic_write(tmp_path / "a.txt", "w") as handle:
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        handle.write("content")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert (tmp_path / "a.txt").read_text() == "content"


def test_a_name_of_249_characters_is_written_with_a_short_temporary_name(tmp_path):
    target = tmp_path / ("a" * 245 + ".png")
    seen = []
    with atomic_write(target) as handle:
        seen = [p.name for p in tmp_path.iterdir()]
        handle.write(b"content")
    assert len(seen) == 1 and seen[0].startswith(".aaaa") and seen[0].endswith(".part") and len(seen[0]) < 60
    assert target.read_bytes() == b"content"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_targets_that_cannot_be_written_are_one_sentence(tmp_path):
    folder = tmp_path / "out.png"
    folder.mkdir()
    with pytest.raises(WriteError, match=r"--output .*out.png is a folder: give the name of a file inside it"):
        check_writable(folder, "--output")
    with pytest.raises(WriteError, match="the folder .*missing does not exist"):
        check_writable(tmp_path / "missing" / "out.png")
    with pytest.raises(WriteError, match="the file name is 256 bytes long, and this file system allows 255"):
        check_writable(tmp_path / ("a" * 252 + ".png"))
    locked = unwritable_folder(tmp_path)
    with pytest.raises(WriteError, match=f"the folder {locked} takes no new files"):
        check_writable(locked / "out.png")
    with pytest.raises(WriteError, match="Cannot write .*: it is a folder"):
        with atomic_write(folder) as handle:
            handle.write(b"never")
    with pytest.raises(WriteError, match="Cannot write"):
        with atomic_write(locked / "out.png") as handle:
            handle.write(b"never")
    assert check_writable(tmp_path / "fine.png") == tmp_path / "fine.png"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "locked") == ["out.png"]
    assert os.listdir(folder) == []


def test_folders_that_cannot_be_made_or_written_are_one_sentence(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(WriteError, match=r"^-o .*notes.txt is a file: give a folder"):
        check_folder(notes, "-o")
    with pytest.raises(WriteError, match=r"notes.txt/a/b: .*notes.txt is a file, not a folder\.$"):
        check_folder(notes / "a" / "b")
    with pytest.raises(WriteError, match="the folder name is 256 bytes long, and this file system allows 255"):
        check_folder(tmp_path / ("a" * 256))
    with pytest.raises(WriteError, match=r"the name of the folder a{16}\.\.\. is 256 bytes long"):
        check_folder(tmp_path / ("a" * 256) / "b")
    with pytest.raises(WriteError, match=r"with '.partial' added, .* its name is 258 bytes long"):
        check_folder(tmp_path / ("a" * 250), beside=(".partial",))
    locked = unwritable_folder(tmp_path)
    with pytest.raises(WriteError, match=f"the folder {locked} takes no new folders"):
        check_folder(locked / "new" / "deeper")
    with pytest.raises(WriteError, match=f"the folder {locked} takes no new files"):
        check_folder(locked)
    assert check_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_folder(tmp_path / ("a" * 247), beside=(".partial", ".old")) == tmp_path / ("a" * 247)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "locked") == ["notes.txt"]  # nothing was made
    assert notes.read_text() == "my notes"
