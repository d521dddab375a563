"""classify's progress: a status line on a terminal, nothing but a line a minute into a pipe."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.support.cli import birdstream_env
from tests.support.video import make_video


def run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal; returns its exit code and what it showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, env=birdstream_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=240), b"".join(chunks).decode()


def test_classify_shows_progress_on_a_terminal_and_nothing_into_a_pipe(tmp_path: Path, planted: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    for i in range(2):
        make_video(card / f"c{i}.mp4", duration_s=3, fps=10)
    args = [sys.executable, "-m", "birdstream", "classify", "--model", str(planted), "--workers", "2", str(card)]
    code, shown = run_on_a_terminal(args)
    assert code == 0, shown
    last = shown.split("\x1b[K")[-1].strip()
    assert re.fullmatch(r"inputs 1/1, files 2/2, 12 images, [0-9.]+ images/s, 0:00:00 left", last), shown
    piped = subprocess.run(args, env=birdstream_env(), capture_output=True, text=True, timeout=240, check=False)
    assert piped.returncode == 0 and piped.stderr == ""  # a short run into a pipe: not a line
