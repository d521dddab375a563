"""The argument parser of the `birdstream` command: its commands, options and their value checks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from birdstream import __version__


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, metavar="CONFIG",
                   help="config file (default: $BIRDSTREAM_CONFIG, ./config.yaml, /etc/birdstream/config.yaml)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1: {text!r}")
    return sizes


def _hwaccel(text: str) -> str | None:
    from birdstream.config.base import check_hwaccel as check

    if text.strip().lower() in ("none", "null", "software", "off"):
        return None
    try:
        return str(check(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more")
    return value


def _degrees(limit: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of degrees") from None
        if not -limit <= value <= limit:
            raise argparse.ArgumentTypeError(f"{text!r} is outside -{limit:g}..{limit:g}")
        return value
    return parse


_latitude, _longitude = _degrees(90), _degrees(180)


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time (e.g. 2024-05-01T00:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _standard_outputs(classify: argparse.ArgumentParser, sub: Any) -> None:
    """classify's Camtrap DP / MegaDetector options, and the `export` command (README: science outputs)."""
    p = classify
    p.add_argument("--camtrap-dp", type=Path, metavar="DIR", help="also write a Camtrap DP 1.0.2 data package here")
    p.add_argument("--lat", type=_latitude, metavar="LAT", help="camera latitude, WGS84 (over deployment.latitude)")
    p.add_argument("--lon", type=_longitude, metavar="LON", help="camera longitude, WGS84 (over deployment.longitude)")
    p.add_argument("--location-name", metavar="NAME", help="the place's name (over deployment.location_name)")
    p.add_argument("--megadetector-json", type=Path, metavar="FILE",
                   help="also write the MegaDetector batch-output JSON (what Timelapse loads)")
    p = sub.add_parser("export", help="standard outputs from the sightings store: camtrap-dp, ebird")
    _config_option(p)
    p.add_argument("format", choices=("camtrap-dp", "ebird"),
                   help="camtrap-dp: a Camtrap DP 1.0.2 data package; ebird: eBird Record Format (Extended) CSV")
    p.add_argument("--out", type=Path, required=True, metavar="PATH",
                   help="camtrap-dp: the folder to write the package into; ebird: the CSV file")
    p.add_argument("--header", action="store_true", help="ebird: a header row (eBird's import wants none)")
    p.add_argument("--since", type=_when, metavar="T", help="sightings that started at or after T (RFC 3339)")
    p.add_argument("--until", type=_when, metavar="T", help="sightings that started before T (RFC 3339)")


def _classify_parser(sub: Any) -> None:
    """`classify` and its options (the science outputs and `export` too)."""
    p = sub.add_parser("classify", help="offline: classify video files, images and folders into sighting events")
    _config_option(p)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="video file, image or folder")
    p.add_argument("--model", metavar="W", help="weights name or .pt file (default: the config's model.weights)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write JSON lines here instead of stdout")
    p.add_argument("--summary", type=Path, metavar="CSV",
                   help="also write one CSV row per sighting: file, species, start, end, best score")
    p.add_argument("--sample-fps", type=_positive, default=2.0, metavar="FPS",
                   help="frames per second classified from videos (default 2)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the config's model.device)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), help="default: the config's")
    p.add_argument("--hwaccel", type=_hwaccel, metavar="TYPE",
                   help="hardware video decoding: auto | cuda | vaapi | qsv | ... (default: software); "
                        "falls back to software with one line on stderr")
    p.add_argument("--hwaccel-device", metavar="DEV", help="e.g. 0 (cuda) or /dev/dri/renderD128 (vaapi)")
    p.add_argument("--keyframes-only", action="store_true",
                   help="decode only key frames (much cheaper; for low --sample-fps)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--workers", type=_workers, default=os.cpu_count() or 1, metavar="N",
                   help="processes that decode and sample (default: the cores); 0 decodes in the classifying one")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="decode and classify on a Ray cluster (the ray extra): ADDRESS of a running one "
                        "(ray://host:10001 or host:6379), none to start a local one")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted run with the same arguments: skip the inputs its manifest "
                        "(next to --out) records as done, redo the one it was in")
    _standard_outputs(p, sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="birdstream", description="Bird sightings from camera streams.")
    parser.add_argument("--version", action="version", version=f"birdstream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    _config_option(p)

    p = sub.add_parser("check-config", help="validate the config and print it resolved, secrets redacted")
    _config_option(p)
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of config.yaml and exit")

    _classify_parser(sub)

    p = sub.add_parser("fetch-model", help="download published weights into the cache and verify sha256")
    _config_option(p)
    p.add_argument("name", nargs="?", help="weights name (default: the config's model.weights, else the published one)")
    p.add_argument("--cache-dir", type=Path, help="default: the config's model.cache_dir")

    p = sub.add_parser("bench", help="model throughput (images/s per batch size) on this machine")
    _config_option(p)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the config's model.device)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), help="default: the config's")
    p.add_argument("--batch-sizes", type=_sizes, default=(1, 2, 4), metavar="N,N,...", help="default 1,2,4")
    p.add_argument("--iterations", type=int, default=3, metavar="N", help="timed forward passes per batch size")
    p.add_argument("--size", type=int, default=384, metavar="PX", help="input size in pixels (default 384)")

    p = sub.add_parser("store", help="the sightings store behind the station's page: rebuild it from sightings.jsonl")
    _config_option(p)
    p.add_argument("action", choices=("rebuild",), help="rebuild: build state_dir/sightings.sqlite3 afresh "
                   "from sightings.jsonl and reviews.jsonl (stop the daemon first)")

    p = sub.add_parser("health", help="exit 0 if the running daemon is healthy (Docker HEALTHCHECK)")
    _config_option(p)
    p.add_argument("--file", type=Path, help="health status file (default: the config's service.health_file)")
    p.add_argument("--max-age", type=_positive, default=30.0, metavar="S",
                   help="the status file must be younger than this (default 30)")
    return parser
