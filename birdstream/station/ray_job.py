"""`classify --ray [ADDRESS]`: the same job on a Ray cluster (the `ray` extra).

Ray Data's batch-inference pattern: media files are listed (one task per folder) and decoded and
sampled as CPU tasks (`flat_map`), classified in an actor pool (`map_batches` with a callable class:
one classifier per actor, one actor per GPU, else one per node), and the rows come back to this
process in input order (`preserve_order`), where each input's frames go through the same trackers,
outputs and resume manifest as a local run. Without an ADDRESS a local Ray with 2 CPUs is started.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from birdstream.config import Config, ConfigError
from birdstream.ingest.errors import StreamError
from birdstream.ingest.files import read_media
from birdstream.ingest.frames import FrameMaker
from birdstream.ingest.media import list_media
from birdstream.ingest.spec import local_path
from birdstream.messages import Frame, Prediction, Region
from birdstream.station import wiring

log = logging.getLogger(__name__)

LOCAL_CPUS = 2


def _list(folder: str) -> tuple[list[str], list[tuple[str, str, str | None]], tuple[str, str, str | None] | None]:
    """A folder's media (as a Ray task): paths, errors of subfolders, the folder's own error."""
    errors: list[StreamError] = []
    try:
        paths = list_media(folder, errors.append)
    except StreamError as err:
        return [], [], (err.label, err.kind, err.detail)
    return [str(p) for p in paths], [(e.label, e.kind, e.detail) for e in errors], None


class _Decode:
    """flat_map: one file -> rows of sampled frames (or one error row)."""

    def __init__(self, run: Any, shape: tuple[int, int, int]) -> None:
        self.sample_fps, self.decode, self.shape = run.sample_fps, run.decode, shape
        self.regions = wiring.region_options(run.config)

    def __call__(self, row: dict[str, Any]) -> Iterator[dict[str, Any]]:
        import threading

        spec = wiring.classify_spec(Path(row["input_path"]), sample_fps=self.sample_fps, regions=self.regions,
                                    **self.decode)
        maker = FrameMaker(spec, self.shape[:2], want_full=False, gate=False)
        path = Path(row["file"]) if row["file"] else (local_path(spec.url) if spec.kind == "file" else None)
        base = {"input": row["input"], "file_index": row["file_index"]}
        try:
            for k, frame in enumerate(read_media(maker, spec, path, threading.Event())):
                # One row per image the classifier judges: the whole picture (part 0, with the
                # frame's fields), then each region's crop (parts 1.., their box and motion).
                yield {**base, "frame": k, "part": 0, "image": frame.image, "meta": _frame_meta(frame), "error": ""}
                for j, region in enumerate(frame.regions, 1):
                    meta = json.dumps({"box": region.box, "pixels": region.pixels, "motion": region.motion})
                    yield {**base, "frame": k, "part": j, "image": region.image, "meta": meta, "error": ""}
        except StreamError as err:
            yield {**base, "frame": 0, "part": 0, "image": np.zeros(self.shape, np.uint8), "meta": "",
                   "error": json.dumps([err.label, err.kind, err.detail])}


def _frame_meta(frame: Frame) -> str:
    """A frame's fields but its pictures (the image travels in its own column; crops in their rows)."""
    return json.dumps({f.name: getattr(frame, f.name) for f in dataclasses.fields(frame)
                       if f.name not in ("image", "full", "regions", "scene")})


class _Classify:
    """map_batches actor: one classifier, loaded once per actor."""

    def __init__(self, config: Config) -> None:
        self.classifier = wiring.classifier(config)
        self.classifier.prepare()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch["probs"] = np.asarray(self.classifier(np.ascontiguousarray(batch["image"])), np.float32)
        return batch


def _quiet_ray_loggers() -> None:
    """Ray's INFO lines and progress notes would bury ours on stderr."""
    for name in ("ray", "ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith("ray.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.ERROR)


class RayJob:
    """The decoded and classified frames of a run's inputs from Ray, read back input by input."""

    def __init__(self, address: str, config: Config, run: Any, inputs: list[Path]) -> None:
        try:
            import ray
            import ray.data  # it sets up its own loggers on import: quietened below, after it
        except ModuleNotFoundError:
            raise ConfigError("--ray: Ray is not installed (pip install 'birdstream[ray]')") from None
        self._ray = ray
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, **quiet)
        _quiet_ray_loggers()
        self.shape = (*run.classifier.input_size, 3)
        self._plans, rows = self._plan(inputs, run)
        self.files = len(rows)
        self._rows = self._dataset(rows, run, config)
        self._next: dict[str, Any] | None = None

    def _plan(self, inputs: list[Path], run: Any) -> tuple[dict[Path, tuple[int, list, Any]], list[dict[str, Any]]]:
        folders = [p for p in inputs if p.is_dir()]
        listing = dict(zip(folders, self._ray.get([self._ray.remote(_list).remote(str(p)) for p in folders])))
        plans: dict[Path, tuple[int, list, Any]] = {}
        rows: list[dict[str, Any]] = []
        for i, path in enumerate(inputs):
            files, errors, failure = listing.get(path, ([""], [], None))
            plans[path] = (i, errors, failure)
            if path in listing and not files and failure is None:
                log.warning("%s: no video or image files in this folder (nothing classified)", path)
            rows += [{"input": i, "input_path": str(path), "file_index": j, "file": f} for j, f in enumerate(files)]
        return plans, rows

    def _dataset(self, rows: list[dict[str, Any]], run: Any, config: Config) -> Iterator[dict[str, Any]]:
        ray = self._ray
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actors = gpus or max(1, len(ray.nodes()))
        ds = ray.data.from_items(rows or [{"input": -1, "input_path": "", "file_index": 0, "file": ""}])
        ds = ds.flat_map(_Decode(run, self.shape))  # an instance, not the class: tasks, not actors
        ds = ds.map_batches(_Classify, fn_constructor_args=(config,), compute=ray.data.ActorPoolStrategy(size=actors),
                            num_gpus=1 if gpus else 0,
                            batch_size=config.model.max_batch, batch_format="numpy")
        _quiet_ray_loggers()
        return iter(ds.iter_rows()) if rows else iter(())

    def predictions(self, path: Path, on_error: Callable[[StreamError], None], stop: Any) -> Iterator[list[Prediction]]:
        """The predictions of one input, in order (inputs must be asked for in the order given)."""
        index, errors, failure = self._plans.pop(path)
        if failure is not None:
            raise StreamError(*failure)
        for err in errors:
            on_error(StreamError(*err))
        batch: list[Prediction] = []
        seq = 0
        while (row := self._take(index)) is not None:
            if row["error"]:
                if path.is_dir():
                    on_error(StreamError(*json.loads(row["error"])))
                    continue
                raise StreamError(*json.loads(row["error"]))
            regions: list[Region] = []
            region_probs: list[np.ndarray] = []
            while (part := self._peek()) is not None and part["input"] == index and part["part"] > 0:
                self._next = None
                meta = json.loads(part["meta"])
                regions.append(Region(box=tuple(meta["box"]), pixels=tuple(meta["pixels"]),
                                      image=np.asarray(part["image"]), motion=meta["motion"]))
                region_probs.append(np.asarray(part["probs"]))
            meta = {**json.loads(row["meta"]), "seq": seq}
            if meta.get("box") is not None:
                meta["box"] = tuple(meta["box"])
            seq += 1
            frame = Frame(image=np.asarray(row["image"]), regions=tuple(regions), **meta)
            batch.append(Prediction(frame, np.asarray(row["probs"]), tuple(region_probs)))
            if len(batch) >= 16:
                yield batch
                batch = []
        if batch:
            yield batch

    def _take(self, index: int) -> dict[str, Any] | None:
        """The next row if it belongs to input ``index``, else None (left for the next input)."""
        row = self._peek()
        if row is None or row["input"] != index:
            return None
        self._next = None
        return row

    def _peek(self) -> dict[str, Any] | None:
        if self._next is None:
            self._next = next(self._rows, None)
        return self._next

    def __enter__(self) -> RayJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ray.shutdown()
