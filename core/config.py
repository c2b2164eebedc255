"""MB.toml -> a typed `Config` (SPEC §3), with environment overrides applied."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs
from cattrs.errors import ClassValidationError

from mb.attrs_convert import closest, describe_path, errors_of, structure
from mb.buildfile import SourceFile, decode_utf8, parse_toml
from mb.environment import providers_with_environment
from mb.errors import ConfigError, MultipleErrors, UserError
from mb.toml_text import toml_repr

SANDBOX_MODES: Final = ("dir", "linux", "none")
#: Resource pool names: TOML bare keys, so every message can show `[resources] NAME = N`.
POOL_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")


@attrs.frozen
class BuildSection:
    jobs: int | None = None
    sandbox: str = "dir"
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
    """Read MB.toml (missing or empty is fine) and apply MB_* environment overrides.

    Types are checked by the strict converter and values (ranges, choices,
    sizes) by `_value_problems`, over the raw document, so a wrong type does
    not hide a wrong value elsewhere: every mistake comes out in one run.
    """
    try:
        with open(path, "rb") as f:
            text = decode_utf8(display_path, f.read(), ConfigError)
    except FileNotFoundError:
        text = ""
    raw = parse_toml(display_path, text, ConfigError)
    source = SourceFile(display_path, text)
    problems: list[UserError] = [
        ConfigError(message, source.location(key_path))
        for key_path, message in _value_problems(raw, os.path.dirname(os.path.abspath(path)))]
    config: Config | None = None
    try:
        config = structure(raw, Config, package="")
    except ClassValidationError as exc:
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
    if problems or config is None:
        problems.sort(key=lambda e: (e.location.line or 0, e.location.col or 0)
                      if e.location else (0, 0))
        raise (problems[0] if len(problems) == 1 else MultipleErrors(problems)) from None
    environment_cache = os.environ.get("MB_CACHE_DIR")
    if environment_cache:
        problem = cache_dir_problem(os.path.dirname(os.path.abspath(path)), environment_cache)
        if problem:
            raise ConfigError(f"MB_CACHE_DIR {problem}, got {environment_cache!r}")
    return apply_environment(config, os.environ)


def _value_problems(raw: dict[str, Any], root: str) -> list[tuple[tuple[str, ...], str]]:
    """(key path, message) for each value of the right type that is out of range.

    A value of the wrong type is left to the converter, which says so.
    """
    problems: list[tuple[tuple[str, ...], str]] = []
    build = raw.get("build")
    if isinstance(build, dict):
        jobs = build.get("jobs")
        if isinstance(jobs, int) and not isinstance(jobs, bool) and jobs < 1:
            problems.append((("build", "jobs"), f"'build.jobs' must be at least 1, got {jobs}"))
        sandbox = build.get("sandbox")
        if isinstance(sandbox, str) and sandbox not in SANDBOX_MODES:
            problems.append((("build", "sandbox"), f"'build.sandbox' must be one of "
                             f"{', '.join(SANDBOX_MODES)}, got {toml_repr(sandbox)}"))
    resources = raw.get("resources")
    if isinstance(resources, dict):
        for name, size in resources.items():
            if not POOL_NAME.fullmatch(name):
                problems.append((("resources", name), f"pool name {toml_repr(name)} may hold "
                                 "only letters, digits, '_' and '-'"))
            if isinstance(size, int) and not isinstance(size, bool) and size < 1:
                problems.append((("resources", name), f"pool 'resources.{name}' must have at "
                                 f"least 1 unit, got {size}"))
    cache = raw.get("cache")
    if isinstance(cache, dict):
        max_size = cache.get("max_size")
        if isinstance(max_size, str):
            from mb.cache import parse_size

            try:
                parse_size(max_size)
            except ValueError as exc:
                problems.append((("cache", "max_size"), f"'cache.max_size': {exc}"))
        directory = cache.get("dir")
        if isinstance(directory, str):
            problem = cache_dir_problem(root, directory)
            if problem:
                problems.append((("cache", "dir"), f"'cache.dir' {problem}, got "
                                 f"{toml_repr(directory)}"))
        remote = cache.get("remote")
        if isinstance(remote, str) and not remote.startswith(("http://", "https://")):
            problems.append((("cache", "remote"), "'cache.remote' must be an http:// or "
                             f"https:// URL, got {toml_repr(redact_url(remote))}"))
    return problems


def cache_dir_problem(root: str, directory: str) -> str | None:
    """Why `directory` (absolute, or relative to the workspace `root`) cannot hold the
    cache, if it cannot.

    The same rules whichever way it is given (`[cache] dir` or `MB_CACHE_DIR`,
    SPEC §3), judged on the real path, so an absolute spelling or a symlink of
    a bad place is refused too: not the workspace root (blobs among the
    sources), not inside mb-out/ (`mb clean` would delete it), not a file.
    """
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root, directory))
    outputs = os.path.join(real_root, "mb-out")
    if path == real_root:
        return "must name a folder, not the workspace root (the default is '.mb/cache')"
    if path == outputs or path.startswith(outputs + os.sep):
        return "may not be inside mb-out/, which `mb clean` removes"
    if os.path.exists(path) and not os.path.isdir(path):
        return "names a file; name a folder (it is made if missing)"
    return None


def redact_url(url: str) -> str:
    """A URL with any `user:password@` replaced by `***@`: credentials never reach a message."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{path}"


def apply_environment(config: Config, environ: Mapping[str, str]) -> Config:
    """`MB_CACHE_DIR`, `MB_REMOTE_CACHE`, `MB_COMFY_URL` win over MB.toml (SPEC §3)."""
    cache = config.cache
    if environ.get("MB_CACHE_DIR"):
        cache = attrs.evolve(cache, dir=environ["MB_CACHE_DIR"])
    if environ.get("MB_REMOTE_CACHE"):
        cache = attrs.evolve(cache, remote=environ["MB_REMOTE_CACHE"])
    return attrs.evolve(config, cache=cache,
                        providers=providers_with_environment(config.providers, environ))
