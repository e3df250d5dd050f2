"""Reading a YAML config (paths resolved against its folder) and writing the resolved one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from wavtune.config.rules import validate
from wavtune.config.schema import apply_overrides, from_dict, to_dict
from wavtune.config.sections import Config, ConfigError


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    section = data.get("data")
    if isinstance(section, dict):
        for key in ("train", "eval", "test", "cache_dir", "align_model"):
            value = section.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                section[key] = str((base / value).resolve())


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (manifest paths resolved against its folder), apply overrides,
    validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
        _resolve_paths(data, path.parent)
    data = apply_overrides(data, overrides or [])
    # --set paths are from the working directory; absolute, the saved config still finds them
    _resolve_paths(data, Path.cwd())
    return validate(from_dict(Config, data))


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True),
                          encoding="utf-8")
