"""MB.toml -> a typed `Config` (SPEC §3), with environment overrides applied."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import attrs
from cattrs.errors import ClassValidationError

from mb.attrs_convert import AttributeInvalid, closest, describe_path, errors_of, structure
from mb.buildfile import SourceFile, parse_toml
from mb.errors import ConfigError, MultipleErrors, UserError

SANDBOX_MODES: Final = ("dir", "linux", "none")


def _sandbox_mode(_instance: Any, attribute: Any, value: str) -> None:
    if value not in SANDBOX_MODES:
        raise AttributeInvalid(attribute.name,
                               f"must be one of {', '.join(SANDBOX_MODES)}, got {value!r}")


def _positive_jobs(_instance: Any, attribute: Any, value: int | None) -> None:
    if value is not None and value < 1:
        raise AttributeInvalid(attribute.name, f"must be at least 1, got {value}")


@attrs.frozen
class BuildSection:
    jobs: int | None = attrs.field(default=None, validator=_positive_jobs)
    sandbox: str = attrs.field(default="dir", validator=_sandbox_mode)
    keep_going: bool = False


@attrs.frozen
class CacheSection:
    dir: str = ".mb/cache"
    max_size: str | None = None
    remote: str | None = None


@attrs.frozen
class Config:
    build: BuildSection = BuildSection()
    resources: dict[str, int] = attrs.field(factory=dict)
    cache: CacheSection = CacheSection()
    providers: dict[str, dict[str, Any]] = attrs.field(factory=dict)


def load_config(path: str, display_path: str = "MB.toml") -> Config:
    """Read MB.toml (missing or empty is fine) and apply MB_* environment overrides."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    raw = parse_toml(display_path, text, ConfigError)
    source = SourceFile(display_path, text)
    try:
        config: Config = structure(raw, Config, package="")
    except ClassValidationError as exc:
        problems: list[UserError] = []
        for key_path, message in errors_of(exc, Config):
            if message.startswith("unknown:"):
                allowed = message.split(":", 1)[1].split(",")
                hint = closest(str(key_path[-1]), allowed)
                text_ = f"unknown key {describe_path(key_path)} in MB.toml"
                text_ += f"; did you mean '{hint}'?" if hint else f" (keys: {', '.join(allowed)})"
            elif message == "missing":
                text_ = f"{describe_path(key_path)} is required"
            else:
                text_ = f"{describe_path(key_path)} {message}"
            problems.append(ConfigError(text_, source.location(key_path)))
        raise (problems[0] if len(problems) == 1 else MultipleErrors(problems)) from None
    return apply_environment(config, os.environ)


def apply_environment(config: Config, environ: Mapping[str, str]) -> Config:
    """`MB_CACHE_DIR`, `MB_REMOTE_CACHE`, `MB_COMFY_URL` win over MB.toml (SPEC §3)."""
    cache = config.cache
    if environ.get("MB_CACHE_DIR"):
        cache = attrs.evolve(cache, dir=environ["MB_CACHE_DIR"])
    if environ.get("MB_REMOTE_CACHE"):
        cache = attrs.evolve(cache, remote=environ["MB_REMOTE_CACHE"])
    providers = {name: dict(settings) for name, settings in config.providers.items()}
    if environ.get("MB_COMFY_URL"):
        providers.setdefault("comfy", {})["url"] = environ["MB_COMFY_URL"]
    return attrs.evolve(config, cache=cache, providers=providers)
