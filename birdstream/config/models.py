"""The validated, frozen configuration objects (pure data; load_config reads files and env)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from birdstream.config.export import DeploymentConfig
from birdstream.config.notify import DigestConfig, NotifyTargetConfig
from birdstream.config.regions import RegionsConfig
from birdstream.config.web import HttpConfig, StoreConfig
from birdstream.config.base import (
    DEFAULT_WEIGHTS,
    DEVICE_PATTERN,
    TOPIC_PATTERN,
    keyed_error,
    _resolve_source,
    _resolve_weights,
    _roi_shape,
    _lower,
    _upper,
    _as_str,
    HWACCEL_TYPES,
    check_hwaccel,
    ConfigPath,
    Ident,
    Section,
)


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Muscat or UTC") from None
    return value


class ModelConfig(Section):
    weights: Annotated[str, Field(min_length=1), AfterValidator(_resolve_weights)] = DEFAULT_WEIGHTS
    """Published weights name (downloaded once into cache_dir, sha256-checked) or a path to a Birder .pt file."""
    device: Annotated[str, BeforeValidator(_lower), Field(pattern=DEVICE_PATTERN)] = "auto"
    """auto (first CUDA GPU, else CPU) | cpu | cuda | cuda:N."""
    precision: Annotated[Literal["auto", "fp32", "fp16", "bf16"], BeforeValidator(_lower)] = "auto"
    """auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | fp16 | bf16."""
    max_batch: Annotated[int, Field(ge=1, le=1024)] = 32
    """Most frames classified in one forward pass, across all streams."""
    max_wait_ms: Annotated[float, Field(ge=0, le=10_000)] = 50
    """Longest wait for a batch to fill before running a partial one."""
    max_age_ms: Annotated[float, Field(gt=0, le=600_000)] = 2000
    """Frames older than this when their batch starts are dropped (counted), so a slow model never lags behind live."""
    cache_dir: ConfigPath | None = None
    """Where downloaded weights live; default $CACHE_DIRECTORY, else $XDG_CACHE_HOME/birdstream, else ~/.cache/birdstream."""
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    """CPU threads for inference on CPU; null = torch's default (all cores)."""
    quantize: Annotated[Literal["none", "int8"], BeforeValidator(_lower)] = "none"
    """CPU only: int8 (dynamic int8 matmuls: about 2.4x the fp32 speed, scores move slightly) | none (exact fp32)."""
    input_size: Annotated[int, Field(ge=64, le=1024, multiple_of=16)] | None = None
    """Classify at this square size (multiple of 16) instead of the model's 384; null = the model's own size."""
    compile: bool = False
    """torch.compile the network at start-up (minutes of compiling; mainly for GPUs)."""
    cuda_graphs: bool = False
    """GPU only: replay the forward as CUDA graphs (one per batch-size bucket), less launch overhead per batch."""

    @model_validator(mode="after")
    def _check_speed(self) -> ModelConfig:
        on_gpu = self.device.startswith("cuda")
        if self.quantize == "int8":
            if on_gpu:
                raise keyed_error("quantize", "int8 is for the CPU only; on a GPU use precision fp16 or bf16")
            if self.precision in ("fp16", "bf16"):
                raise keyed_error("quantize", f"int8 runs with fp32 around it, not precision {self.precision}")
            if self.compile:
                raise keyed_error("compile", "cannot compile an int8-quantized network (quantize: int8)")
        if self.cuda_graphs and self.device == "cpu":
            raise keyed_error("cuda_graphs", "needs a CUDA device, but device is cpu")
        return self


class MotionConfig(Section):
    enabled: bool | None = None
    """Only classify frames with motion; null = auto: on for live sources, off for files and folders."""
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.005
    """Fraction of the picture that must change against the background to count as motion."""
    keepalive_s: Annotated[float, Field(ge=0)] = 8
    """Classify one frame at least this often even without motion (0 = never); keep it below sightings.end_after_s so a perched bird stays one sighting."""


class V4l2Config(Section):
    input_format: str | None = None
    """USB cameras: pixel format to ask for (e.g. mjpeg, yuyv422); null = the driver's default."""
    width: Annotated[int, Field(ge=1, le=16384)] | None = None
    """USB cameras: capture width in pixels; null = the driver's default."""
    height: Annotated[int, Field(ge=1, le=16384)] | None = None
    """USB cameras: capture height in pixels; null = the driver's default."""
    fps: Annotated[float, Field(gt=0, le=1000)] | None = None
    """USB cameras: capture frame rate; null = the driver's default."""


class StreamConfig(Section):
    id: Ident
    """Stream id: [a-z0-9_-]+, unique; used in MQTT topics and file names."""
    url: Annotated[str, Field(min_length=1), AfterValidator(_resolve_source)]
    """rtsp(s)://, http(s)://, rtmp:// URL, a video file, /dev/videoN, or a folder of images."""
    enabled: bool = True
    """false keeps the stream in the file but does not open it."""
    sample_fps: Annotated[float, Field(gt=0, le=120)] = 2.0
    """Frames per second sent to the classifier."""
    realtime: bool = False
    """Files only: pace reading at the file's own frame rate, like a camera."""
    loop: bool = False
    """Files only: start again at the end."""
    roi: Annotated[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)],
                         Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None,
                   BeforeValidator(_roi_shape)] = None
    """[x, y, w, h] in source pixels: classify only this part of the picture; null = all of it."""
    rtsp_transport: Annotated[Literal["tcp", "udp"], BeforeValidator(_lower)] = "tcp"
    """RTSP only: tcp (reliable, the default) or udp."""
    keyframes_only: bool = False
    """Decode only keyframes: far less CPU, sampling limited to the camera's keyframe interval."""
    hwaccel: Annotated[Literal[HWACCEL_TYPES] | None, BeforeValidator(check_hwaccel)] = None  # type: ignore[valid-type]
    """Hardware decoding: null (software) | auto (first of cuda, vaapi, qsv that works, else software) | cuda | vaapi | qsv | ...; falls back to software when the device fails."""
    hwaccel_device: Annotated[str, BeforeValidator(_as_str), Field(min_length=1)] | None = None
    """Device for hwaccel: e.g. 0 (cuda GPU index) or /dev/dri/renderD128 (vaapi); null = the default device."""
    stall_s: Annotated[float, Field(gt=0, le=3600)] = 10
    """A source that delivers no frame for this long is closed and reopened."""
    open_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10
    """Give up opening (connecting to) a source after this long, then retry with backoff."""
    motion: MotionConfig = MotionConfig()
    """Motion gate: skip still scenes."""
    v4l2: V4l2Config = V4l2Config()
    """USB (V4L2) camera capture settings."""
    watch: bool = False
    """Folders only: keep watching for new images (e.g. uploads) instead of reading the folder once."""
    regions: RegionsConfig | None = None
    """This stream's regions settings, replacing the global `regions:` section; null = the global one."""
    password_file: ConfigPath | None = None
    """File holding the URL's password (the url then names only the user: rtsp://user@host/...)."""
    tls_verify: bool = True
    """https/rtsps/rtmps: verify the camera's certificate and host name (false only for a camera you trust on a trusted network)."""
    ca_file: ConfigPath | None = None
    """https/rtsps/rtmps: CA certificate (PEM) that signed the camera's own certificate; null = the system CAs."""
    password: SkipJsonSchema[SecretStr | None] = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check_hwaccel(self) -> StreamConfig:
        if self.hwaccel_device is not None and self.hwaccel is None:
            raise keyed_error("hwaccel_device", "set hwaccel too (e.g. cuda or vaapi); it is null (software)")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise keyed_error("ca_file", f"no such file {self.ca_file}")
        return self


class SceneryConfig(Section):
    enabled: bool = True
    """Learn what the empty scene scores and require movement before a sighting starts (a rock is not a bird)."""
    motion_min: Annotated[float, Field(ge=0, le=1)] = 0.005
    """Fraction of the picture that must change for a frame to count as movement."""
    motion_window_s: Annotated[float, Field(ge=0, le=3600)] = 5
    """A sighting may start only this many seconds after a frame with movement."""
    margin: Annotated[float, Field(ge=0, le=1)] = 0.25
    """How far a species must score above the empty scene's score for it to start a sighting."""
    baseline_s: Annotated[float, Field(gt=0, le=86_400)] = 120
    """Memory (seconds) of what the empty scene scores."""
    still_limit_s: Annotated[float, Field(ge=0, le=86_400)] = 300
    """A sighting with no movement for this long counts as scenery and ends (0 = never)."""


class NewSpeciesConfig(Section):
    min_frames: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Supporting frames a species never sighted at this station needs before its first sighting; null = as any other."""


class SightingsConfig(Section):
    enter_score: Annotated[float, Field(gt=0, le=1)] = 0.6
    """Smoothed score at which a sighting starts."""
    exit_score: Annotated[float, Field(ge=0, lt=1)] = 0.4
    """Smoothed score below which a sighting is ending (must be below enter_score)."""
    min_frames: Annotated[int, Field(ge=1, le=1000)] = 2
    """Supporting sampled frames before a sighting starts."""
    end_after_s: Annotated[float, Field(gt=0, le=86_400)] = 10
    """A sighting ends after its species has been below exit_score for this long."""
    smoothing_s: Annotated[float, Field(ge=0, le=3600)] = 1
    """Time constant of the exponential smoothing of scores (0 = no smoothing)."""
    update_every_s: Annotated[float, Field(ge=0, le=86_400)] = 30
    """While a sighting is supported, publish an update event at least this often (seconds; 0 = no periodic updates)."""
    update_min_delta: Annotated[float, Field(ge=0, le=1)] = 0.1
    """...and one sooner whenever the score rose by at least this much since the last event (0 = never)."""
    top_k: Annotated[int, Field(ge=1, le=50)] = 5
    """How many (species, score) pairs go into an event's `top`."""
    allow: tuple[str, ...] = ()
    """Only these species make sightings (class names); empty = all."""
    deny: tuple[str, ...] = ()
    """These species never make sightings (e.g. a resident pet bird)."""
    thresholds: dict[str, Annotated[float, Field(gt=0, le=1)]] = {}
    """Per-species enter_score, overriding the global one (species name -> score)."""
    scenery: SceneryConfig = SceneryConfig()
    """Scenery is not a sighting: what never moves does not start one."""
    priors: ConfigPath | None = None
    """CSV of species x month occurrence weights 0..1 (header species,jan,...,dec); low weights need stronger, longer evidence, 0 = never that month."""
    priors_default: Annotated[float, Field(ge=0, le=1)] = 1
    """Weight of species not in the priors file (1 = no prior; 0 = only the listed species)."""
    rare_below: Annotated[float, Field(ge=0, le=1)] = 0.1
    """A sighting whose prior weight is below this is rare (notify when: rare)."""
    new_species: NewSpeciesConfig = NewSpeciesConfig()
    """A stricter rule for the first sighting ever of a species at this station."""

    @model_validator(mode="after")
    def _check(self) -> SightingsConfig:
        if self.exit_score >= self.enter_score:
            raise keyed_error("exit_score", f"must be lower than enter_score ({self.enter_score:g}), "
                                            f"got {self.exit_score:g}")
        both = sorted(set(self.allow) & set(self.deny))
        if both:
            raise keyed_error("deny", f"{both[0]!r} is also in allow")
        return self


class TlsConfig(Section):
    enabled: bool = False
    """Connect with TLS (set port to 8883 for most brokers); the system CAs are used unless ca_file is set."""
    ca_file: ConfigPath | None = None
    """CA certificate (PEM) that signed the broker's certificate."""
    cert_file: ConfigPath | None = None
    """Client certificate (PEM) for brokers that require one."""
    key_file: ConfigPath | None = None
    """Client private key (PEM) for cert_file."""
    insecure: bool = False
    """Skip only the check that the broker's certificate names mqtt.host (it must still be signed by ca_file or a
    system CA); for a broker reached by an address its certificate does not list. Lets a holder of any such
    certificate pose as the broker."""

    @model_validator(mode="after")
    def _check(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise keyed_error("key_file", "needs cert_file as well")
        return self


class HaDiscoveryConfig(Section):
    enabled: bool = False
    """Publish Home Assistant MQTT discovery config (one sensor per stream)."""
    prefix: Annotated[str, Field(min_length=1)] = "homeassistant"
    """Home Assistant's discovery topic prefix."""


class MqttConfig(Section):
    enabled: bool = True
    """Publish sightings and stream status to an MQTT broker."""
    host: Annotated[str, Field(min_length=1)] = "localhost"
    """Broker host name or address."""
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    """Broker port (1883 plain, 8883 TLS)."""
    topic_prefix: Annotated[str, Field(pattern=TOPIC_PATTERN)] = "birdstream"
    """First topic level(s): topics are <topic_prefix>/<station>/<stream>/...; no wildcards, no leading/trailing /."""
    protocol: Annotated[Literal["5", "3.1.1"], BeforeValidator(_as_str),
                        WithJsonSchema({"enum": [5, "5", "3.1.1"]})] = "5"
    """MQTT protocol version: 5 or 3.1.1."""
    client_id: str | None = None
    """MQTT client id; null = birdstream-<station>."""
    username: str | None = None
    """User name for the broker; null = anonymous."""
    password_file: ConfigPath | None = None
    """File holding the broker password; default the systemd credential mqtt_password when present."""
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 60
    """MQTT keepalive interval."""
    tls: TlsConfig = TlsConfig()
    """TLS to the broker."""
    ha_discovery: HaDiscoveryConfig = HaDiscoveryConfig()
    """Home Assistant MQTT discovery."""
    publish_snapshots: bool = False
    """Also publish each sighting's JPEG snapshot (retained) on <prefix>/<station>/<stream>/snapshot."""
    max_packet_bytes: Annotated[int, Field(ge=1024)] | None = None
    """The broker's largest accepted packet, for brokers that do not announce it (MQTT 3.1.1; an MQTT 5
    broker's own announcement is always used). Snapshots are shrunk to fit; other messages over it are set aside."""
    password: SkipJsonSchema[SecretStr | None] = Field(default=None, exclude=True)


class OutboxConfig(Section):
    max_events: Annotated[int, Field(ge=1)] = 100_000
    """Undelivered MQTT events kept on disk while the broker is away; the oldest go first beyond this (counted)."""
    max_age_days: Annotated[float, Field(gt=0)] = 7
    """Undelivered events older than this are discarded (counted); they stay in sightings.jsonl."""


class LogConfig(Section):
    max_bytes: Annotated[int, Field(ge=1024)] = 50 * 1024 * 1024
    """state_dir/sightings.jsonl is rotated at this size."""
    backup_count: Annotated[int, Field(ge=0, le=1000)] = 10
    """Rotated files kept (sightings.jsonl.1 ... .N)."""
    fsync: bool = True
    """fsync each line of sightings.jsonl before its event enters the MQTT outbox, so a power cut never leaves
    the broker with events the log lost (one fsync per event; false = flush to the OS only)."""


class SnapshotsConfig(Section):
    enabled: bool = True
    """Save a JPEG of the best frame of each sighting under state_dir/snapshots/."""
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 85
    """JPEG quality, 1-100."""
    max_age_days: Annotated[float, Field(gt=0)] = 30
    """Snapshots older than this are deleted."""
    max_total_mb: Annotated[float, Field(gt=0)] = 1000
    """The oldest snapshots are deleted when all of them together exceed this many MiB."""


class ServiceConfig(Section):
    shutdown_grace_s: Annotated[float, Field(ge=0, le=600)] = 10
    """On stop, how long to wait for the broker to take queued events (they stay on disk either way)."""
    watchdog_stale_s: Annotated[float, Field(gt=0, le=3600)] = 60
    """Unhealthy (no watchdog ping, health fails) when the engine or a running stream is silent this long."""
    stream_failed_unhealthy_s: Annotated[float, Field(ge=0, le=604_800)] = 600
    """Unhealthy (systemd restarts the daemon) when a stream has been in state failed this long; 0 = never."""
    health_file: ConfigPath | None = None
    """Health status file read by `birdstream health`; null = <state_dir>/health.json."""


class Config(Section):
    """The whole birdstream configuration (config.yaml)."""

    station: Ident = "station"
    """Station name: [a-z0-9_-]+, used in MQTT topics and file names."""
    state_dir: ConfigPath = Path("state")
    """Outbox, sightings log, snapshots, health file; default $STATE_DIRECTORY (systemd), else ./state."""
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    """DEBUG | INFO | WARNING | ERROR."""
    timezone: Annotated[str, AfterValidator(_check_timezone)] | None = None
    """The station's IANA time zone (e.g. Asia/Muscat): decides a frame's month for sightings.priors, the day and quiet hours of notify; null = the system's."""
    model: ModelConfig = ModelConfig()
    """The classifier."""
    streams: tuple[StreamConfig, ...] = Field(default=(), validate_default=True)
    """The sources to watch (at least one)."""
    sightings: SightingsConfig = SightingsConfig()
    """Turning per-frame scores into sightings."""
    regions: RegionsConfig = RegionsConfig()
    """Where the bird is: moving regions classified on their own crops."""
    mqtt: MqttConfig = MqttConfig()
    """Publishing to an MQTT broker."""
    outbox: OutboxConfig = OutboxConfig()
    """Events waiting on disk for the broker."""
    log: LogConfig = LogConfig()
    """The local sightings log (JSON lines)."""
    snapshots: SnapshotsConfig = SnapshotsConfig()
    """JPEG snapshots of sightings."""
    http: HttpConfig = HttpConfig()
    store: StoreConfig = StoreConfig()
    """Optional health/metrics HTTP endpoint."""
    service: ServiceConfig = ServiceConfig()
    """Daemon behaviour: shutdown, watchdog, health file."""
    notify: tuple[NotifyTargetConfig, ...] = ()
    """Notification targets (Apprise URLs): who hears of which sightings."""
    digest: DigestConfig = DigestConfig()
    """A daily digest of the day's species through Apprise."""
    deployment: DeploymentConfig = DeploymentConfig()
    """Where the cameras are (Camtrap DP and eBird exports): the station's facts, per stream where they differ."""
    taxonomy: ConfigPath | None = None
    """CSV (common_name, scientific_name, rank, source, source_version, licence) over the shipped taxonomy table."""

    @field_validator("streams")
    @classmethod
    def _unique_ids(cls, streams: tuple[StreamConfig, ...], info: ValidationInfo) -> tuple[StreamConfig, ...]:
        if not streams and (info.context or {}).get("require_streams", True):
            raise ValueError("at least one stream is needed (streams: - id: ... url: ...)")
        seen: dict[str, int] = {}
        for i, stream in enumerate(streams):
            if stream.id in seen:
                raise keyed_error(f"{i}.id", f"duplicate stream id {stream.id!r} (also streams[{seen[stream.id]}])")
            seen[stream.id] = i
        return streams

    @property
    def health_path(self) -> Path:
        """The health status file: service.health_file or <state_dir>/health.json."""
        return self.service.health_file or self.state_dir / "health.json"

    @property
    def enabled_streams(self) -> list[StreamConfig]:
        """The streams the daemon runs (``enabled: true``), in config order."""
        return [s for s in self.streams if s.enabled]

    def stream(self, stream_id: str) -> StreamConfig:
        """The stream with this id (KeyError if none)."""
        for s in self.streams:
            if s.id == stream_id:
                return s
        raise KeyError(stream_id)
