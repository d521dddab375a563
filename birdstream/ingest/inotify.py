"""Watching a folder with Linux inotify (a few syscalls per change) instead of rescanning it.

A scan of 20k files every 2 s cost 7.7 % of a core; inotify costs nothing while nothing changes.
The kernel reports what changed; a file is still reported only once its size and time have
stopped changing (as the scanning FolderWatcher does), so a half-uploaded picture is not read.
Where inotify is missing (not Linux) or its watch limit is reached, `make_watcher` falls back to
scanning with one log line. The raw syscalls through ctypes: three calls, no dependency.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import stat
import struct
import time
from pathlib import Path

from birdstream.ingest.media import FolderWatcher, inside, is_media

log = logging.getLogger(__name__)

IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE = 0x8, 0x40, 0x80, 0x100
IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x200, 0x400, 0x800
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR, IN_ISDIR = 0x4000, 0x8000, 0x01000000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, 0o2000000
MASK = (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF
        | IN_MOVE_SELF | IN_ONLYDIR)
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name


class InotifyUnavailable(OSError):
    pass


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    lib = ctypes.CDLL(name, use_errno=True)
    if not hasattr(lib, "inotify_init1"):
        raise InotifyUnavailable(errno.ENOSYS, "no inotify in this C library")
    return lib


class InotifyWatcher:
    """New media files in a folder tree, from inotify events; the same contract as FolderWatcher."""

    def __init__(self, folder: Path, seen: set[Path]) -> None:
        self.folder = folder
        self.seen = set(seen)
        self._real = folder.resolve()
        self._lib = _libc()
        fd = self._lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise InotifyUnavailable(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self._fd = fd
        self._dirs: dict[int, Path] = {}
        self._pending: dict[Path, tuple[int, float] | None] = {}
        try:
            self._watch_tree(folder)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def poll(self) -> list[Path]:
        """Files that appeared and are complete since the last call (each reported once)."""
        self._read_events()
        ready: list[Path] = []
        for path, last in list(self._pending.items()):
            try:
                st = path.stat()
            except OSError:
                self._pending.pop(path, None)
                continue
            if not stat.S_ISREG(st.st_mode):
                self._pending.pop(path, None)
                continue
            sig = (st.st_size, st.st_mtime)
            if st.st_size > 0 and last == sig and time.time() - st.st_mtime > 0.5:
                del self._pending[path]
                self.seen.add(path)
                if inside(self._real, path):
                    ready.append(path)
            else:
                self._pending[path] = sig
        return sorted(ready)

    # -- events -------------------------------------------------------------------------------
    def _read_events(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            offset = 0
            while offset + EVENT.size <= len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                raw = data[offset + EVENT.size: offset + EVENT.size + length].rstrip(b"\0")
                offset += EVENT.size + length
                self._event(wd, mask, os.fsdecode(raw))

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:  # the kernel dropped events: look at everything once
            log.info("%s: too many changes at once; scanning the folder", self.folder)
            self._scan(self.folder)
            return
        if mask & IN_IGNORED:
            self._dirs.pop(wd, None)
            return
        parent = self._dirs.get(wd)
        if parent is None or not name:
            return
        path = parent / name
        if mask & IN_ISDIR:
            if mask & (IN_CREATE | IN_MOVED_TO) and not name.startswith("."):
                try:
                    self._watch_tree(path)
                except InotifyUnavailable as exc:  # the watch limit: its files are found by overflow scans only
                    log.warning("%s: cannot watch this folder for new files: %s", path, exc)
                self._scan(path)  # files written before its watch was in place
            return
        if mask & (IN_DELETE | IN_MOVED_FROM):
            self.seen.discard(path)  # a later file of that name is new
            self._pending.pop(path, None)
        elif mask & (IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO) and is_media(path) and path not in self.seen:
            self._pending.setdefault(path, None)

    def _watch_tree(self, top: Path) -> None:
        for dirpath, dirnames, _ in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            wd = self._lib.inotify_add_watch(self._fd, os.fsencode(dirpath), MASK)
            if wd < 0:
                err = ctypes.get_errno()
                if Path(dirpath) == self.folder or err == errno.ENOSPC:
                    raise InotifyUnavailable(err, f"{os.strerror(err)} (watching {dirpath})")
                continue  # a folder that vanished meanwhile
            self._dirs[wd] = Path(dirpath)

    def _scan(self, top: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                path = Path(dirpath, name)
                if is_media(path) and path not in self.seen:
                    self._pending.setdefault(path, None)


def make_watcher(folder: Path, seen: set[Path]) -> InotifyWatcher | FolderWatcher:
    """inotify where the kernel has it, else the scanning watcher (one log line says why)."""
    try:
        watcher = InotifyWatcher(folder, seen)
    except (OSError, AttributeError) as exc:
        log.info("%s: watched by scanning every few seconds (inotify unavailable: %s)", folder, exc)
        return FolderWatcher(folder, seen)
    watcher._scan(folder)  # files that arrived between the listing and the watch
    return watcher
