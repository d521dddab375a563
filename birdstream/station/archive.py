"""Archives that outlive one run: `classify --out F [--resume]` keeps a durable manifest next to F.

The manifest (``F.manifest.jsonl``) is append-only JSON lines: a header naming what the run was
(inputs, options, model and config digests), then one line per finished input with the byte sizes
of --out and --summary once that input's events were fsync'ed. A run killed anywhere (Ctrl-C,
SIGKILL, power cut) is resumed by cutting --out and --summary back to the last recorded sizes
(dropping a half-done input's events) and skipping the inputs recorded; an unfinished last line
(a write torn by the power cut) is ignored. Appending, not rewriting, keeps a run of 100k inputs
linear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from birdstream.config import Config, ConfigError

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


def manifest_path(out: Path) -> Path:
    """Where the manifest of `--out F` lives: next to F, named after it."""
    return out.with_name(out.name + ".manifest.jsonl")


def fingerprint(args: Any, config: Config) -> dict[str, Any]:
    """What decides a run's outputs; a resume must match it. Digests only: no secret reaches the file."""
    options = {
        "sample_fps": args.sample_fps,
        "summary": args.summary is not None,
        "hwaccel": getattr(args, "hwaccel", None),
        "keyframes_only": bool(getattr(args, "keyframes_only", False)),
    }
    model = config.model.model_dump(mode="json", exclude={"weights", "cache_dir"})  # weights: by content
    settings = {"station": config.station, "model": model,
                "sightings": config.sightings.model_dump(mode="json")}
    return {
        "version": MANIFEST_VERSION,
        "inputs": [str(Path(p).absolute()) for p in args.inputs],
        "options": options,
        "model": _weights_digest(config.model.weights),
        "config": _digest(json.dumps(settings, sort_keys=True, default=str).encode()),
    }


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _weights_digest(weights: str) -> str:
    """The checkpoint's content (a file replaced under the same name is a different model)."""
    path = Path(weights)
    if not path.is_file():
        return _digest(weights.encode())  # a published name: its download is verified by sha256
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Done:
    """One finished input: sizes of the outputs after its events, and the errors it reported."""

    input: str
    out_bytes: int
    summary_bytes: int
    errors: list[str] = field(default_factory=list)


class Manifest:
    """The append-only record of a run's finished inputs, fsync'ed line by line."""

    def __init__(self, path: Path, header: dict[str, Any], done: list[Done]) -> None:
        self.path = path
        self.header = header
        self.done = {d.input: d for d in done}
        self.last = done[-1] if done else Done("", 0, 0)
        self._file: IO[str] | None = None

    @classmethod
    def start(cls, path: Path, header: dict[str, Any]) -> Manifest:
        """A new run: the manifest is replaced (atomically, so a crash leaves the old or the new)."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"header": header}, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return cls(path, header, [])

    @classmethod
    def resume(cls, path: Path, header: dict[str, Any]) -> Manifest:
        """The run recorded at `path`; ConfigError (a usage error) when it was a different run."""
        if not path.is_file():
            log.info("%s: no manifest, nothing to resume: starting from the first input", path)
            return cls.start(path, header)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            recorded = json.loads(lines[0])["header"]
        except (OSError, UnicodeDecodeError, ValueError, IndexError, KeyError, TypeError) as exc:
            raise ConfigError(f"--resume: {path}: not a classify manifest ({exc})") from None
        differ = [key for key in header if recorded.get(key) != header[key]]
        if differ:
            raise ConfigError(f"--resume: {path} was written by a run with a different {', '.join(differ)} "
                              "(resume with the same inputs, options, model and config, or run without --resume)")
        done: list[Done] = []
        for line in lines[1:]:
            try:
                done.append(Done(**json.loads(line)))
            except (ValueError, TypeError):
                break  # the line being written when the power went: that input was not finished
        manifest = cls(path, header, done)
        manifest._rewrite_if_torn(len(lines) - 1)
        return manifest

    def _rewrite_if_torn(self, recorded: int) -> None:
        if recorded == len(self.done):
            return
        lines = [json.dumps({"header": self.header}, sort_keys=True)]
        lines += [json.dumps(d.__dict__, sort_keys=True) for d in self.done.values()]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def record(self, done: Done) -> None:
        """One more input is finished (call once its events are fsync'ed)."""
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(done.__dict__, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done[done.input] = done
        self.last = done

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def open_output(path: Path, keep_bytes: int, *, newline: str | None = None) -> IO[str]:
    """An output file cut back to `keep_bytes` (the last finished input's end) and opened to append."""
    mode = "r+" if path.exists() else "w"
    f = path.open(mode, encoding="utf-8", newline=newline)
    f.truncate(keep_bytes)
    f.seek(keep_bytes)
    return f


def durable(*files: IO[str] | None) -> list[int]:
    """Flush and fsync each file; returns their sizes (the offsets a resume cuts back to)."""
    sizes = []
    for f in files:
        if f is None:
            sizes.append(0)
            continue
        f.flush()
        os.fsync(f.fileno())
        sizes.append(os.fstat(f.fileno()).st_size)
    return sizes


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
