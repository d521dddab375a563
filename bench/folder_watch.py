"""CPU cost of watching a folder of 20k files: inotify against the polling scan, measured in one run.

Run from the repository root: python -m bench.folder_watch [files] [rounds]

Both watchers look at the same unchanged tree (100 subfolders); each round times `POLLS` polls of
one, then of the other (alternating which goes first), in process CPU time. Printed: the median and
spread per poll, what that costs at the default watch_interval_s of 2 s as a share of one core, and
the ratio scan/inotify.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from birdstream.ingest.inotify import InotifyWatcher
from birdstream.ingest.media import FolderWatcher

POLLS = 5
INTERVAL_S = 2.0


def make_tree(root: Path, files: int) -> set[Path]:
    paths = set()
    for i in range(files):
        folder = root / f"cam{i % 100:03d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"IMG_{i:05d}.JPG"
        path.write_bytes(b"\xff\xd8")
        paths.add(path)
    return paths


def cpu_per_poll(watcher: InotifyWatcher | FolderWatcher) -> float:
    t0 = time.process_time()
    for _ in range(POLLS):
        if watcher.poll():
            raise RuntimeError("the tree changed during the benchmark")
    return (time.process_time() - t0) / POLLS


def main(files: int = 20_000, rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seen = make_tree(root, files)
        scan, inotify = FolderWatcher(root, seen), InotifyWatcher(root, seen)
        cpu_per_poll(scan), cpu_per_poll(inotify)  # warm up (dentry cache, first reads)
        times: dict[str, list[float]] = {"scan": [], "inotify": []}
        for r in range(rounds):
            order = [("scan", scan), ("inotify", inotify)]
            for name, watcher in order if r % 2 == 0 else order[::-1]:
                times[name].append(cpu_per_poll(watcher))
        inotify.close()
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:8s} {med * 1e3:9.3f} ms CPU per poll (min {min(values) * 1e3:.3f}, max {max(values) * 1e3:.3f}); "
              f"{med / INTERVAL_S * 100:.3f} % of a core at one poll every {INTERVAL_S:g} s")
    ratio = statistics.median(times["scan"]) / max(statistics.median(times["inotify"]), 1e-9)
    print(f"files: {files}, rounds: {rounds}; ratio scan/inotify: {ratio:.0f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
