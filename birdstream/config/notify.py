"""The `notify:` and `digest:` sections: Apprise targets (their URLs are secrets, checked, never shown)."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator

from birdstream.config.base import ConfigPath, Section, keyed_error

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _minutes(text: str) -> int | None:
    m = _HHMM.match(text.strip())
    return int(m.group(1)) * 60 + int(m.group(2)) if m else None


def _as_str(value: object) -> object:
    # YAML 1.1 reads an unquoted 20:00 as the sexagesimal number 1200.
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


def _url_from_file(section: Section, required: bool) -> None:
    """`url` or `url_file` (a file holding the URL, e.g. a systemd credential): exactly one; the file is read here."""
    url, file = section.url, section.url_file  # type: ignore[attr-defined]
    if url is not None and file is not None:
        raise keyed_error("url_file", "give url or url_file, not both")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise keyed_error("url_file", f"cannot read {file}: {err.strerror or err}") from None
        if not text:
            raise keyed_error("url_file", f"{file} is empty")
        object.__setattr__(section, "url", SecretStr(text))  # frozen model: set once, during validation
    elif url is None and required:
        raise keyed_error("url", "missing (give the Apprise URL, or url_file naming a file that holds it)")
    if section.url is not None:  # type: ignore[attr-defined]
        _check_url("url_file" if file is not None else "url", section.url)  # type: ignore[attr-defined]


def _check_url(key: str, url: SecretStr) -> None:
    problem = check_apprise_url(url.get_secret_value())
    if problem is not None:
        raise keyed_error(key, problem)


def check_apprise_url(url: str) -> str | None:
    """None when Apprise knows the URL's scheme and can parse it (nothing is sent), else why not."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme or not re.match(r"^[a-z][a-z0-9+.-]*$", scheme):
        return "not an Apprise URL (SCHEME://...)"
    try:
        import apprise
    except ImportError:
        return "needs the apprise package (pip install apprise)"
    if scheme not in _schemes(apprise):
        return f"Apprise does not know the scheme {scheme!r}"
    logger = logging.getLogger("apprise")
    mute = _Mute()
    logger.addFilter(mute)  # its parse warnings quote the URL, secrets and all
    try:
        usable = apprise.Apprise.instantiate(url) is not None
    finally:
        logger.removeFilter(mute)
    return None if usable else f"Apprise cannot use this {scheme}:// URL (a part is missing or malformed)"


class _Mute(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@functools.cache
def _schemes(apprise) -> frozenset[str]:  # type: ignore[no-untyped-def]
    out: set[str] = set()
    for plugin in apprise.Apprise().details().get("schemas", []):
        for key in ("protocols", "secure_protocols"):
            value = plugin.get(key) or ()
            out.update(s.lower() for s in ([value] if isinstance(value, str) else value))
    return frozenset(out)


class NotifyTargetConfig(Section):
    url: SecretStr | None = None
    """Apprise URL of the target (tgram://, ntfy://, mailto://, discord://, json://, ...); shown redacted."""
    url_file: ConfigPath | None = None
    """File holding the Apprise URL instead of url (keeps tokens out of config.yaml; e.g. a systemd credential)."""
    when: tuple[Literal["start", "new_species", "first_of_day", "rare"], ...] = ("new_species", "rare")
    """Which sighting starts to send: start (every one), new_species (first ever at this station), first_of_day (first of its species today), rare (prior below sightings.rare_below)."""
    cooldown_s: Annotated[float, Field(ge=0, le=30 * 86_400)] = 600
    """After a notification about a species, none about the same species for this many seconds."""
    quiet_hours: Annotated[str, BeforeValidator(_as_str)] | None = None
    """"HH:MM-HH:MM" in the station's timezone (may wrap midnight, e.g. 22:00-06:00): send nothing then."""
    attach_snapshot: bool = True
    """Attach the sighting's JPEG snapshot (when snapshots are enabled)."""

    @model_validator(mode="after")
    def _check(self) -> NotifyTargetConfig:
        if not self.when:
            raise keyed_error("when", "needs at least one of start, new_species, first_of_day, rare")
        if self.quiet_hours is not None:
            self.quiet_span()
        _url_from_file(self, required=True)
        return self

    def quiet_span(self) -> tuple[int, int] | None:
        """quiet_hours as [from, to) minutes of the day."""
        if self.quiet_hours is None:
            return None
        parts = self.quiet_hours.split("-")
        span = [_minutes(p) for p in parts] if len(parts) == 2 else [None]
        if None in span or span[0] == span[1]:
            raise keyed_error("quiet_hours", f"must be HH:MM-HH:MM with two different times, got {self.quiet_hours!r}")
        return span[0], span[1]  # type: ignore[return-value]


class DigestConfig(Section):
    url: SecretStr | None = None
    """Apprise URL that gets a daily digest (species since the last digest, counts, the best picture); null = none."""
    url_file: ConfigPath | None = None
    """File holding the digest's Apprise URL instead of url."""
    at: Annotated[str, BeforeValidator(_as_str)] = "20:00"
    """Local time (station timezone) of the digest, HH:MM."""
    attach_snapshot: bool = True
    """Attach the best snapshot of the period."""

    @model_validator(mode="after")
    def _check(self) -> DigestConfig:
        if _minutes(self.at) is None:
            raise keyed_error("at", f"must be a time of day HH:MM, got {self.at!r}")
        _url_from_file(self, required=False)
        return self

    @property
    def at_minute(self) -> int:
        minute = _minutes(self.at)
        assert minute is not None
        return minute
