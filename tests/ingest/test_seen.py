"""The record of a folder's classified files: durable, bounded, and forgiving of a cut line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from birdstream.ingest.seen import SeenFiles


def test_a_file_is_known_by_path_size_and_time_across_instances(tmp_path: Path) -> None:
    a, b = tmp_path / "IMG_0001.JPG", tmp_path / "IMG_0002.JPG"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    SeenFiles(tmp_path / "rec.jsonl").add([a])
    again = SeenFiles(tmp_path / "rec.jsonl")
    assert a in again and b not in again
    a.write_bytes(b"a new picture under the old name")  # a card whose numbering started again
    assert a not in again


def test_a_cut_last_line_is_one_warning_and_the_rest_is_kept(tmp_path: Path, caplog) -> None:
    files = [tmp_path / f"{i}.jpg" for i in range(3)]
    for f in files:
        f.write_bytes(b"x")
    record = tmp_path / "rec.jsonl"
    SeenFiles(record).add(files)
    with open(record, "ab") as out:
        out.write(b'["/cut/by/a/power')
    with caplog.at_level(logging.WARNING):
        seen = SeenFiles(record)
    assert all(f in seen for f in files)
    assert [r.getMessage() for r in caplog.records] == [f"{record}: 1 damaged line(s) skipped"]


def test_the_record_is_bounded_and_forgets_deleted_files(tmp_path: Path) -> None:
    files = [tmp_path / f"{i}.jpg" for i in range(10)]
    for f in files:
        f.write_bytes(b"x")
    seen = SeenFiles(tmp_path / "rec.jsonl", max_entries=4)
    for f in files:
        seen.add([f])
    assert len(seen) == 4 and files[-1] in seen and files[0] not in seen
    os.remove(files[-1])
    seen.forget_missing()
    assert len(SeenFiles(tmp_path / "rec.jsonl")) == 3
