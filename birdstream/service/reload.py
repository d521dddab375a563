"""What changed between two configs (SIGHUP): streams to add, remove or restart, and what needs a restart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from birdstream.config import Config

# Sections the daemon can apply without a restart; any other change is reported in restart_needed.
LIVE_SECTIONS = frozenset({"streams", "log_level"})


@dataclass(frozen=True)
class ConfigDiff:
    added: tuple[str, ...]  # stream ids new in the new config (enabled)
    removed: tuple[str, ...]  # stream ids gone or disabled
    changed: tuple[str, ...]  # stream ids whose settings changed (restart that stream)
    restart_needed: tuple[str, ...]  # top-level keys that changed and only apply on restart
    log_level_changed: bool

    def summary(self) -> str:
        parts = [f"{name} {', '.join(ids)}" for name, ids in
                 (("added", self.added), ("removed", self.removed), ("restarted", self.changed)) if ids]
        if self.log_level_changed:
            parts.append("log level changed")
        if self.restart_needed:
            parts.append(f"needs a restart to apply: {', '.join(self.restart_needed)}")
        return "; ".join(parts) or "no changes"


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare the enabled streams by id and settings (password included), the other sections by value."""
    before = {s.id: s for s in old.enabled_streams}
    after = {s.id: s for s in new.enabled_streams}
    restart = tuple(k for k in Config.model_fields if k not in LIVE_SECTIONS and getattr(old, k) != getattr(new, k))
    return ConfigDiff(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        changed=tuple(i for i in after if i in before and after[i] != before[i]),
        restart_needed=restart,
        log_level_changed=old.log_level != new.log_level,
    )


def make_reloader(path: Path, current: Callable[[], Config],
                  apply: Callable[[Config, ConfigDiff], None]) -> Callable[[], str]:
    """A Supervisor.on_reload callback: re-read *path*, set the log level, hand the diff to *apply*.

    A bad file raises ConfigError, which the supervisor logs while the running config stays.
    """

    def reload() -> str:
        from birdstream.config import load_config
        from birdstream.service.logsetup import set_level

        new = load_config(path)
        diff = diff_configs(current(), new)
        if diff.log_level_changed:
            set_level(new.log_level)
        apply(new, diff)
        return diff.summary()

    return reload
