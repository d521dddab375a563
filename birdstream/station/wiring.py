"""Config sections -> each stage's own objects: the one place that maps the one onto the other.

The classifier, the engine, one plan per stream (its source spec, tracker options and how its
frames are queued) and the publisher are built here and nowhere else, so a stage never reads the
config and a default lives only in the config models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdstream.config import Config
from birdstream.config.models import ModelConfig, MqttConfig, SightingsConfig, StreamConfig
from birdstream.errors import SourceError
from birdstream.ingest.regions import RegionOptions
from birdstream.ingest.spec import SourceSpec
from birdstream.messages import Frame, Prediction
from birdstream.publish import (
    JsonlOptions,
    MqttOptions,
    OutboxOptions,
    Publisher,
    SnapshotOptions,
    TlsOptions,
)
from birdstream.publish.species_seen import SpeciesSeen
from birdstream.publish.store import StoreOptions
from birdstream.publish.notify import DigestOptions, NotifyOptions, NotifyTarget
from birdstream.track.options import TrackOptions, check_species
from birdstream.track.priors import read_priors
from birdstream.track.router import MediaTracker

if TYPE_CHECKING:  # torch lives behind these; importing the wiring stays instant
    from birdstream.engine.classifier import Classifier
    from birdstream.engine.engine import Engine
    from birdstream.model.speed import SpeedOptions

CLASSIFY_ID = "classify"  # the source id of a `birdstream classify` input


# ---- the model and the engine ---------------------------------------------------------------

def speed_options(model: ModelConfig) -> SpeedOptions:
    """The ``model:`` keys that trade exactness or start-up time for throughput."""
    from birdstream.model.speed import SpeedOptions

    return SpeedOptions(quantize=model.quantize, input_size=model.input_size, compile=model.compile,
                        cuda_graphs=model.cuda_graphs)


def classifier(config: Config) -> Classifier:
    """The config's classifier, loaded (threads set first: torch allows that only before any work)."""
    from birdstream.engine.classifier import Classifier
    from birdstream.model.speed import configure_threads

    m = config.model
    configure_threads(m.threads)
    return Classifier.load(m.weights, m.device, m.precision, m.cache_dir, speed=speed_options(m),
                           max_batch=m.max_batch)


def engine(config: Config, classifier: Any, on_predictions: Callable[[list[Prediction]], None]) -> Engine:
    """The one inference thread, batching as the ``model:`` section says."""
    from birdstream.engine.engine import Engine

    m = config.model
    return Engine(classifier, max_batch=m.max_batch, max_wait_ms=m.max_wait_ms, max_age_s=m.max_age_ms / 1000.0,
                  on_predictions=on_predictions)


# ---- one stream ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamPlan:
    """Everything the live pipeline needs to run one configured stream."""

    spec: SourceSpec  # what to read and how
    track: TrackOptions  # how its predictions become sightings (species checked against the model)
    blocking: bool  # its reader waits for the classifier instead of losing frames (files, folders)
    want_full: bool  # frames carry the full-resolution picture (for snapshots)


def stream_plan(config: Config, stream: StreamConfig, class_names: Sequence[str]) -> StreamPlan:
    """The plan of one configured stream; ConfigError when a species name is unknown to the model."""
    spec = source_spec(stream, regions=region_options(config, stream))
    return StreamPlan(spec=spec, track=track_options(config.sightings, class_names, stream.sample_fps,
                                                            timezone=config.timezone),
                      blocking=_blocking(spec), want_full=config.snapshots.enabled)


def tracker(config: Config, classifier: Any, options: TrackOptions, stream_of: Callable[[Frame], str], *,
            metrics_label: str | None = None, seen: SpeciesSeen | None = None) -> MediaTracker:
    """The sightings of one source (a stream, or one classify input); `seen` marks first_at_station."""
    return MediaTracker(station=config.station, class_names=classifier.class_names, model_id=classifier.model_id,
                        options=options, stream_of=stream_of, metrics_label=metrics_label, seen=seen)


def track_options(sightings: SightingsConfig, class_names: Sequence[str] | None = None,
                  sample_fps: float | None = None, timezone: str | None = None) -> TrackOptions:
    """TrackOptions of the ``sightings:`` section; with `class_names`, species names are checked
    against the model (ConfigError if unknown)."""
    scenery = sightings.scenery
    options = TrackOptions(
        enter_score=sightings.enter_score,
        exit_score=sightings.exit_score,
        min_frames=sightings.min_frames,
        end_after_s=sightings.end_after_s,
        smoothing_s=sightings.smoothing_s,
        max_frame_s=1.0 / (sample_fps or StreamConfig.model_fields["sample_fps"].default),
        update_min_delta=sightings.update_min_delta,
        update_every_s=sightings.update_every_s,
        top_k=sightings.top_k,
        allow=sightings.allow,
        deny=sightings.deny,
        thresholds=dict(sightings.thresholds),
        scenery=scenery.enabled,
        motion_min=scenery.motion_min,
        motion_window_s=scenery.motion_window_s,
        baseline_margin=scenery.margin,
        baseline_s=scenery.baseline_s,
        still_limit_s=scenery.still_limit_s,
        priors=read_priors(sightings.priors) if sightings.priors is not None else None,
        priors_default=sightings.priors_default,
        timezone=timezone,
        new_species_min_frames=sightings.new_species.min_frames,
    )
    return check_species(options, class_names) if class_names is not None else options


def region_options(config: Config, stream: StreamConfig | None = None) -> RegionOptions | None:
    """The regions settings of one stream (its own section, else the global one); None when off."""
    r = stream.regions if stream is not None and stream.regions is not None else config.regions
    if not r.enabled:
        return None
    still = config.sightings.scenery.still_limit_s
    # A region that stops moving is held (still classified) as long as a still sighting lasts.
    hold_s = still if still > 0 else 86_400.0
    return RegionOptions(max_regions=r.max_regions, analysis_width=r.analysis_width, pixel_delta=r.pixel_delta,
                         min_box_px=r.min_box_px, max_box_fraction=r.max_box_fraction, max_aspect=r.max_aspect,
                         everywhere=r.everywhere, context=r.context, min_crop_px=r.min_crop_px, hold_s=hold_s)


def source_spec(stream: StreamConfig, *, sample_fps: float | None = None,
                regions: RegionOptions | None = None) -> SourceSpec:
    """The ingest spec of one configured stream (its url already carries the password_file secret)."""
    v4l2 = stream.v4l2
    size = f"{v4l2.width}x{v4l2.height}" if v4l2.width and v4l2.height else None
    return SourceSpec(
        id=stream.id,
        url=stream.url,
        sample_fps=sample_fps if sample_fps is not None else stream.sample_fps,
        realtime=stream.realtime,
        loop=stream.loop,
        roi=tuple(stream.roi) if stream.roi is not None else None,
        transport=stream.rtsp_transport,
        keyframes_only=stream.keyframes_only,
        hwaccel=stream.hwaccel,
        hwaccel_device=stream.hwaccel_device,
        motion_gate=stream.motion.enabled,
        motion_threshold=stream.motion.threshold,
        keepalive_s=stream.motion.keepalive_s,
        stall_s=stream.stall_s,
        open_timeout_s=stream.open_timeout_s,
        read_timeout_s=stream.open_timeout_s,
        input_format=v4l2.input_format,
        video_size=size,
        framerate=v4l2.fps,
        watch=stream.watch,
        tls_verify=stream.tls_verify,
        ca_file=str(stream.ca_file) if stream.ca_file is not None else None,
        regions=regions,
    )


def classify_spec(path: Path, *, sample_fps: float, hwaccel: str | None = None, hwaccel_device: str | None = None,
                  keyframes_only: bool = False, regions: RegionOptions | None = None) -> SourceSpec:
    """The spec of one `birdstream classify` input: a stream entry's defaults, every frame judged
    (no motion gate), decoded as the stream keys of the same names say."""
    stream = StreamConfig.model_construct(
        id=CLASSIFY_ID, url=str(path), sample_fps=sample_fps, hwaccel=hwaccel, hwaccel_device=hwaccel_device,
        keyframes_only=keyframes_only)
    return source_spec(stream.model_copy(update={"motion": stream.motion.model_copy(update={"enabled": False})}),
                       regions=regions)


def _blocking(spec: SourceSpec) -> bool:
    """A file or folder read as fast as it goes: every sampled frame is classified, none dropped.

    Its reader waits for the classifier (a blocking mailbox) instead of losing frames to a
    latest-wins one, so what the daemon finds in a file does not depend on the load.
    """
    try:
        return not spec.live and not spec.realtime
    except SourceError:  # an unknown scheme: the reader reports it as the stream's error
        return False


# ---- the publisher --------------------------------------------------------------------------

def mqtt_options(m: MqttConfig) -> MqttOptions:
    """The broker connection of the ``mqtt:`` section (its password already read from password_file)."""
    tls = None
    if m.tls.enabled or m.tls.ca_file or m.tls.cert_file:
        tls = TlsOptions(ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file,
                         insecure=m.tls.insecure)
    return MqttOptions(
        host=m.host,
        port=m.port,
        topic_prefix=m.topic_prefix,
        protocol=m.protocol,
        client_id=m.client_id,
        username=m.username,
        password=m.password.get_secret_value() if m.password is not None else None,
        tls=tls,
        keepalive_s=m.keepalive_s,
        publish_snapshots=m.publish_snapshots,
        discovery=m.ha_discovery.enabled,
        discovery_prefix=m.ha_discovery.prefix,
        max_packet_bytes=m.max_packet_bytes,
    )


def jsonl_options(config: Config) -> JsonlOptions:
    return JsonlOptions(max_bytes=config.log.max_bytes, backups=config.log.backup_count, fsync=config.log.fsync)


def snapshot_options(config: Config) -> SnapshotOptions:
    s = config.snapshots
    return SnapshotOptions(enabled=s.enabled, quality=s.jpeg_quality, max_age_days=s.max_age_days,
                           max_total_mb=s.max_total_mb)


def outbox_options(config: Config) -> OutboxOptions:
    return OutboxOptions(max_messages=config.outbox.max_events, max_age_days=config.outbox.max_age_days)


def publisher(config: Config) -> Publisher:
    """The Publisher of the config: snapshots, the JSON-lines log and (when enabled) MQTT."""
    return Publisher(
        station=config.station,
        state_dir=config.state_dir,
        mqtt=mqtt_options(config.mqtt) if config.mqtt.enabled else None,
        topic_prefix=config.mqtt.topic_prefix,
        jsonl=jsonl_options(config),
        snapshots=snapshot_options(config),
        outbox=outbox_options(config),
        store=StoreOptions(enabled=config.store.enabled, max_age_days=config.store.max_age_days),
        streams=[stream.id for stream in config.enabled_streams],
        forget_unlisted=True,
        notify=notify_options(config),
    )


def notify_options(config: Config) -> NotifyOptions | None:
    """The notification targets and digest of the config (None when there are none)."""
    d = config.digest
    digest = None
    if d.url is not None:
        digest = DigestOptions(url=d.url.get_secret_value(), at_minute=d.at_minute, attach_snapshot=d.attach_snapshot)
    targets = tuple(
        NotifyTarget(url=t.url.get_secret_value(), when=tuple(t.when), cooldown_s=t.cooldown_s,
                     quiet_hours=t.quiet_span(), attach_snapshot=t.attach_snapshot, place=f"notify[{i}]")
        for i, t in enumerate(config.notify)
    )
    if not targets and digest is None:
        return None
    return NotifyOptions(targets=targets, digest=digest, timezone=config.timezone,
                         rare_below=config.sightings.rare_below)
