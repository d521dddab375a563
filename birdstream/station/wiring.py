"""Config sections -> each stage's own options: the one place that maps the one onto the other."""

from __future__ import annotations

from collections.abc import Sequence

from birdstream.config import Config
from birdstream.config.models import SightingsConfig, StreamConfig
from birdstream.ingest.regions import RegionOptions
from birdstream.ingest.spec import SourceSpec
from birdstream.publish import (
    JsonlOptions,
    MqttOptions,
    OutboxOptions,
    Publisher,
    SnapshotOptions,
    TlsOptions,
)
from birdstream.track.options import TrackOptions, check_species


def track_options(sightings: SightingsConfig, class_names: Sequence[str], sample_fps: float | None = None) -> TrackOptions:
    """TrackOptions for one stream; species names checked against the model (ConfigError if unknown)."""
    scenery = sightings.scenery
    options = TrackOptions(
        enter_score=sightings.enter_score,
        exit_score=sightings.exit_score,
        min_frames=sightings.min_frames,
        end_after_s=sightings.end_after_s,
        smoothing_s=sightings.smoothing_s,
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
    )
    if sample_fps:
        options = options.for_sample_fps(sample_fps)
    return check_species(options, class_names)


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
        regions=regions,
    )


def publisher(config: Config) -> Publisher:
    """The Publisher of the config: snapshots, the JSON-lines log and (when enabled) MQTT."""
    m = config.mqtt
    mqtt = None
    if m.enabled:
        tls = None
        if m.tls.enabled or m.tls.ca_file or m.tls.cert_file:
            tls = TlsOptions(ca_file=m.tls.ca_file, cert_file=m.tls.cert_file, key_file=m.tls.key_file,
                             insecure=m.tls.insecure)
        mqtt = MqttOptions(
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
        )
    s = config.snapshots
    return Publisher(
        station=config.station,
        state_dir=config.state_dir,
        mqtt=mqtt,
        topic_prefix=m.topic_prefix,
        jsonl=JsonlOptions(max_bytes=config.log.max_bytes, backups=config.log.backup_count),
        snapshots=SnapshotOptions(enabled=s.enabled, quality=s.jpeg_quality, max_age_days=s.max_age_days,
                                  max_total_mb=s.max_total_mb),
        outbox=OutboxOptions(max_messages=config.outbox.max_events, max_age_days=config.outbox.max_age_days),
        streams=[stream.id for stream in config.enabled_streams],
        forget_unlisted=True,
    )
