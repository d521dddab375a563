"""The `birdstream` command: run | check-config | classify | fetch-model | bench | health.

User errors (BirdstreamError) print one line, ``birdstream: error: <message>``, never a traceback;
anything unexpected is logged once with its traceback and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from birdstream.cli_parser import build_parser
from birdstream.errors import BirdstreamError, CheckpointError, ConfigError, DownloadError

log = logging.getLogger("birdstream")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class Unavailable(BirdstreamError):
    """A command whose implementation is not part of this build."""


def _lazy(module: str, name: str, command: str) -> Callable[..., Any]:
    """Import a command's implementation on use, so that startup stays instant and torch-free."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise Unavailable(f"{command}: not available in this build ({module} is missing)") from None
        raise
    fn = getattr(mod, name, None)
    if fn is None:
        raise Unavailable(f"{command}: not available in this build ({module}.{name} is missing)")
    return fn  # type: ignore[no-any-return]


def _load(args: argparse.Namespace, *, require_streams: bool = True, optional: bool = False) -> Any:
    from birdstream.config import default_config, find_config, load_config

    path = find_config(args.config, required=not optional)
    if path is None:
        return default_config()
    args.config = path
    return load_config(path, require_streams=require_streams)


def _is_path(weights: str) -> bool:
    return Path(weights).is_absolute()


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    from birdstream.service.logsetup import set_level

    set_level(config.log_level)
    run_daemon = _lazy("birdstream.service.daemon", "run_daemon", "run")
    return int(run_daemon(config, config_path=args.config))


def cmd_check_config(args: argparse.Namespace) -> int:
    from birdstream.config import json_schema, redacted, to_yaml

    if args.schema:
        sys.stdout.write(json_schema())
        return EXIT_OK
    config = _load(args)
    _check_weights(config.model.weights, f"{args.config}: model.weights")
    _check_priors(config)
    _check_taxonomy(config)
    enabled = len(config.enabled_streams)
    sys.stdout.write(f"# {args.config}: valid ({enabled} of {len(config.streams)} streams enabled)\n")
    sys.stdout.write(to_yaml(redacted(config)))
    return EXIT_OK


def cmd_classify(args: argparse.Namespace) -> int:
    outputs = (("--out", args.out), ("--summary", args.summary), ("--megadetector-json", args.megadetector_json))
    for option, path in outputs:
        if path is not None:
            _check_writable(option, path)
    config = _load(args, require_streams=False, optional=True)
    model_update: dict[str, Any] = {}
    if args.model:
        weights = str(Path(args.model).expanduser().absolute()) if _looks_like_path(args.model) else args.model
        model_update["weights"] = weights
    if args.device:
        model_update["device"] = args.device
    if args.precision:
        model_update["precision"] = args.precision
    if model_update:
        config = _override_model(config, model_update)
    _check_weights(config.model.weights, "--model" if args.model else "model.weights")
    if args.camtrap_dp is not None:
        _check_deployment(config, args)
        _check_taxonomy(config)
    classify_main = _lazy("birdstream.station.offline", "classify_main", "classify")
    return int(classify_main(args, config))


def _check_deployment(config: Any, args: argparse.Namespace) -> None:
    """A package without coordinates is invalid: say so before minutes of classifying."""
    if config.deployment.streams:
        return  # per-camera facts: checked per camera when the package is written
    for key, value in (("latitude", args.lat), ("longitude", args.lon)):
        if value is None and getattr(config.deployment, key) is None:
            option = "--lat" if key == "latitude" else "--lon"
            raise ConfigError(f"--camtrap-dp: deployment.{key} is needed (set it in the config or give {option})")
    if args.camtrap_dp.exists() and not args.camtrap_dp.is_dir():
        raise ConfigError(f"--camtrap-dp {args.camtrap_dp}: not a folder")


def _check_taxonomy(config: Any) -> None:
    """A bad `taxonomy:` file is named now, not after the work that needs it."""
    if config.taxonomy is not None:
        from birdstream.export.taxonomy import load_taxonomy

        load_taxonomy(config.taxonomy)


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "ebird":
        _check_writable("--out", args.out)
    config = _load(args, require_streams=False)
    if args.format == "ebird":
        ebird_csv = _lazy("birdstream.station.exports", "ebird_csv", "export")
        n = ebird_csv(config, args.out, args.since, args.until, args.header)
        sys.stdout.write(f"eBird CSV in {args.out}: {n} record(s)\n")
        return EXIT_OK
    store_package = _lazy("birdstream.station.exports", "store_package", "export")
    counts = store_package(config, args.out, args.since, args.until)
    sys.stdout.write(f"Camtrap DP package in {args.out}: " + ", ".join(f"{n} {t}" for t, n in counts.items()) + "\n")
    return EXIT_OK


def _check_weights(weights: str, what: str) -> None:
    """A weights path must hold a Birder checkpoint; anything else must be a published name."""
    from birdstream.model.registry import KNOWN_WEIGHTS
    from birdstream.model.weights import check_checkpoint_file

    if weights in KNOWN_WEIGHTS:
        return
    if _is_path(weights) or Path(weights).exists():
        check_checkpoint_file(Path(weights), what)
        return
    raise CheckpointError(f"{what}: {weights!r} is not a known weights name "
                          f"({', '.join(sorted(KNOWN_WEIGHTS))}) nor a path to a .pt file")


def _check_priors(config: Any) -> None:
    """The priors file parses; with a checkpoint file, its species are the model's (ConfigError naming the line).

    Notify URLs were checked with the config (Apprise parses them; nothing is sent).
    """
    if config.sightings.priors is None:
        return
    from birdstream.station import wiring

    options = wiring.track_options(config.sightings)  # reads and parses the priors file
    if _is_path(config.model.weights):  # a published name would mean a download: names are checked at start
        from birdstream.model.checkpoint import read_checkpoint
        from birdstream.track.options import check_species

        check_species(options, read_checkpoint(config.model.weights).class_names)


def _check_writable(option: str, path: Path) -> None:
    """An output file must be writable before minutes of classifying, with a one-line usage error."""
    if path.is_dir():
        raise ConfigError(f"{option}: {path}: is a folder, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{option}: {path}: no such folder {folder}")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise ConfigError(f"{option}: {path}: not writable (permission denied)")


def _looks_like_path(weights: str) -> bool:
    from birdstream.config.base import _looks_like_path as looks

    return looks(weights)


def _override_model(config: Any, update: dict[str, Any]) -> Any:
    """Apply --model/--device/--precision through validation, so bad values are usage errors."""
    from pydantic import ValidationError

    from birdstream.config import ModelConfig

    data = config.model.model_dump()
    data.update(update)
    try:
        model = ModelConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise ConfigError(f"--{err['loc'][0]}: {err['msg']} (got {err.get('input')!r})") from None
    return config.model_copy(update={"model": model})


def cmd_fetch_model(args: argparse.Namespace) -> int:
    from birdstream.config import DEFAULT_WEIGHTS

    config = _load(args, require_streams=False, optional=True)
    name = args.name or (config.model.weights if not _is_path(config.model.weights) else DEFAULT_WEIGHTS)
    cache_dir = args.cache_dir or config.model.cache_dir
    fetch_model = _lazy("birdstream.model.download", "fetch_model", "fetch-model")
    path = fetch_model(name, cache_dir, progress=_progress_printer(name))
    sys.stderr.write("\n")
    sys.stdout.write(f"{path}\n")
    return EXIT_OK


def _progress_printer(label: str) -> Callable[[int, int | None], None]:
    def progress(done: int, total: int | None) -> None:
        mib = done / 2**20
        text = f"{mib:.1f}/{total / 2**20:.1f} MiB" if total else f"{mib:.1f} MiB"
        sys.stderr.write(f"\r{label}: {text}")
        sys.stderr.flush()

    return progress


def cmd_bench(args: argparse.Namespace) -> int:
    config = _load(args, require_streams=False, optional=True)
    from birdstream.model.bench import format_table, machine_line, run_bench, table_note

    device = args.device or config.model.device
    precision = args.precision or config.model.precision
    sys.stderr.write(f"benchmarking the full model (random weights) on {device}, {precision}, "
                     f"{args.size}x{args.size}, batch sizes {','.join(map(str, args.batch_sizes))}\n")
    rows = run_bench(args.batch_sizes, iterations=max(1, args.iterations), device=device,
                     precision=precision, size=(args.size, args.size))
    sys.stdout.write(format_table(rows) + "\n")
    sys.stderr.write(table_note(rows) + "\n" + machine_line(device) + "\n")
    return EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    from birdstream.service.health import check_health_file

    if args.file is None:
        args.file = _load(args, require_streams=False).health_path
    verdict = check_health_file(args.file, max_age_s=args.max_age)
    sys.stdout.write(verdict.message + "\n")
    return EXIT_OK if verdict.healthy else EXIT_FAILURE


def cmd_store(args: argparse.Namespace) -> int:
    config = _load(args, require_streams=False)
    from birdstream.publish.store import rebuild_locked

    events, reviews = rebuild_locked(Path(config.state_dir))
    sys.stdout.write(f"sightings store rebuilt in {config.state_dir}: {events} event(s), {reviews} review(s)\n")
    return EXIT_OK


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], dict[type[BaseException], int]]] = {
    "run": (cmd_run, {ConfigError: EXIT_USAGE, CheckpointError: EXIT_USAGE}),
    "check-config": (cmd_check_config, {ConfigError: EXIT_USAGE, CheckpointError: EXIT_USAGE}),
    "classify": (cmd_classify, {ConfigError: EXIT_USAGE, CheckpointError: EXIT_USAGE, DownloadError: EXIT_USAGE}),
    "fetch-model": (cmd_fetch_model, {}),
    "bench": (cmd_bench, {ConfigError: EXIT_USAGE}),
    "health": (cmd_health, {}),
    "store": (cmd_store, {ConfigError: EXIT_USAGE}),
    "export": (cmd_export, {ConfigError: EXIT_USAGE}),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from birdstream.service.logsetup import setup_logging

    setup_logging("INFO" if args.command == "run" else "WARNING")
    command, codes = COMMANDS[args.command]
    # The daemon handles its own signals; the others stop on SIGTERM like on Ctrl-C.
    stopper = _Stopper() if args.command != "run" else None
    old_handlers = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)} if stopper else {}
    args.stop_event = stopper.event if stopper else None
    args.hold_signals = stopper.hold if stopper else contextlib.nullcontext
    try:
        return command(args)
    except BirdstreamError as exc:
        sys.stderr.write(f"birdstream: error: {_one_line(str(exc))}\n")
        return next((code for kind, code in codes.items() if isinstance(exc, kind)), EXIT_FAILURE)
    except KeyboardInterrupt as exc:
        sys.stderr.write("birdstream: interrupted\n")
        terminated = isinstance(exc, Terminated) or (stopper is not None and stopper.signum == signal.SIGTERM)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE  # stdout closed early (e.g. piped into head)
    except Exception:
        log.exception("internal error in %s", args.command)
        return EXIT_FAILURE
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that output files (--out, --summary) are closed complete."""


class _Stopper:
    """SIGTERM/SIGINT handler of the one-shot commands: raises, and also sets `event`.

    A signal that lands while FFmpeg runs a Python callback has its exception swallowed there;
    the event still tells the command's loop (and a blocked FFmpeg call) to stop.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._held = 0  # inside hold(): the exception waits for the end of the held block
        self._pending = False

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum
        self.event.set()
        if self._held:
            self._pending = True
            return
        raise self._exception()

    def _exception(self) -> KeyboardInterrupt:
        return Terminated() if self.signum == signal.SIGTERM else KeyboardInterrupt()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """A block a signal does not cut in two (writing one event and noting it): the exception is
        raised at its end instead."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._pending:
                self._pending = False
                raise self._exception()


def _one_line(text: str) -> str:
    from birdstream.redact import redact_text

    return redact_text(" ".join(text.split("\n"))).strip()
