"""MB.toml (`mb.config`): types, defaults, errors with positions, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mb.config import BuildSection, CacheSection, Config, apply_environment, load_config
from mb.errors import ConfigError, MultipleErrors

ENV_VARS = ("MB_CACHE_DIR", "MB_REMOTE_CACHE", "MB_COMFY_URL")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "MB.toml"
    path.write_text(text)
    return load_config(str(path))


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


# --- values -------------------------------------------------------------------------


def test_missing_and_empty_files_give_the_defaults(tmp_path: Path) -> None:
    assert load_config(str(tmp_path / "MB.toml")) == Config()
    assert load(tmp_path, "") == Config()
    assert load(tmp_path, "# only a comment\n") == Config()
    assert Config() == Config(build=BuildSection(jobs=None, sandbox="dir", keep_going=False),
                              resources={}, cache=CacheSection(".mb/cache", None, None),
                              providers={})


def test_every_documented_key(tmp_path: Path) -> None:
    config = load(tmp_path, (
        "[build]\njobs = 4\nsandbox = \"linux\"\nkeep_going = true\n"
        "[resources]\ngpu = 1\napi = 8\n"
        "[cache]\ndir = \"/shared/cache\"\nmax_size = \"20GB\"\n"
        "remote = \"http://cache.example:8080\"\n"
        "[providers.comfy]\nurl = \"http://127.0.0.1:8188\"\n"
        "[providers.tts]\nengine = \"espeak\"\napi_key_env = \"OPENAI_API_KEY\"\n"
        "voices = [\"a\", \"b\"]\n"
    ))
    assert config == Config(
        build=BuildSection(jobs=4, sandbox="linux", keep_going=True),
        resources={"gpu": 1, "api": 8},
        cache=CacheSection(dir="/shared/cache", max_size="20GB",
                           remote="http://cache.example:8080"),
        providers={"comfy": {"url": "http://127.0.0.1:8188"},
                   "tts": {"engine": "espeak", "api_key_env": "OPENAI_API_KEY",
                           "voices": ["a", "b"]}},
    )


@pytest.mark.parametrize("mode", ["dir", "linux", "none"])
def test_sandbox_modes(tmp_path: Path, mode: str) -> None:
    assert load(tmp_path, f'[build]\nsandbox = "{mode}"\n').build.sandbox == mode


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ('[build]\njobs = "4"\n', "MB.toml:2:1: 'build.jobs' must be an integer, got the string \"4\""),
    ("[build]\njobs = 2.0\n", "MB.toml:2:1: 'build.jobs' must be an integer, got the number 2.0"),
    ('[build]\nkeep_going = "false"\n',
     "MB.toml:2:1: 'build.keep_going' must be true or false, got the string \"false\""),
    ('[build]\nsandbox = "docker"\n',
     "MB.toml:2:1: 'build.sandbox' must be one of dir, linux, none, got \"docker\""),
    ("[build]\nsandbox = 1\n", "MB.toml:2:1: 'build.sandbox' must be a string, got the integer 1"),
    ("\n\n[resources]\n  gpu = true\n",
     "MB.toml:4:3: 'resources.gpu' must be an integer, got the boolean true"),
    ('[resources]\ngpu = "1"\n',
     "MB.toml:2:1: 'resources.gpu' must be an integer, got the string \"1\""),
    ("resources = [1]\n", "MB.toml:1:1: 'resources' must be a table, got the list [1]"),
    ("[cache]\ndir = 3\n", "MB.toml:2:1: 'cache.dir' must be a string, got the integer 3"),
    ("[cache]\nmax_size = 1000\n",
     "MB.toml:2:1: 'cache.max_size' must be a string, got the integer 1000"),
    ('[resources]\n"big gpu" = 2\n', "MB.toml:2:1: pool name \"big gpu\" may hold only "
                                      "letters, digits, '_' and '-'"),
    ('[cache]\ndir = ""\n', "MB.toml:2:1: 'cache.dir' must name a folder, not the workspace "
                           "root (the default is '.mb/cache'), got \"\""),
    ('[cache]\ndir = "./"\n', "MB.toml:2:1: 'cache.dir' must name a folder, not the "
                             "workspace root (the default is '.mb/cache'), got \"./\""),
    ('[cache]\ndir = "mb-out/cache"\n', "MB.toml:2:1: 'cache.dir' may not be inside mb-out/, "
                                       "which `mb clean` removes, got \"mb-out/cache\""),
    ("providers = 3\n", "MB.toml:1:1: 'providers' must be a table, got the integer 3"),
    ('[providers]\ncomfy = "http://x"\n',
     "MB.toml:2:1: 'providers.comfy' must be a table, got the string \"http://x\""),
    ("[buld]\njobs = 2\n", "MB.toml:1:1: unknown key 'buld' in MB.toml; did you mean 'build'?"),
    ("[build]\njbos = 2\n",
     "MB.toml:2:1: unknown key 'build.jbos' in MB.toml; did you mean 'jobs'?"),
    ("[build]\nzzzz = 2\n",
     "MB.toml:2:1: unknown key 'build.zzzz' in MB.toml (keys: jobs, sandbox, keep_going)"),
    ("[cache]\nremtoe = \"x\"\n",
     "MB.toml:2:1: unknown key 'cache.remtoe' in MB.toml; did you mean 'remote'?"),
    ("[xyz]\n", "MB.toml:1:1: unknown key 'xyz' in MB.toml (keys: build, resources, cache, "
                "providers)"),
    ("[build]\njobs = \n", "MB.toml:2:8: TOML syntax error: invalid value"),
    ("[build\n", "MB.toml:1:7: TOML syntax error: expected ']' at the end of a table "
                 "declaration"),
])
def test_errors_name_the_key_and_its_position(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text) == message


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(MultipleErrors) as info:
        load(tmp_path, '[build]\njobs = "x"\nkeep_going = "no"\n[resources]\ngpu = 1.5\n')
    assert [str(e) for e in info.value.errors] == [
        "MB.toml:2:1: 'build.jobs' must be an integer, got the string \"x\"",
        "MB.toml:3:1: 'build.keep_going' must be true or false, got the string \"no\"",
        "MB.toml:5:1: 'resources.gpu' must be an integer, got the number 1.5",
    ]
    assert all(isinstance(e, ConfigError) for e in info.value.errors)


def test_display_path_is_used_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "MB.toml"
    path.write_text('[build]\njobs = "4"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path), display_path="ws/MB.toml")
    assert str(info.value).startswith("ws/MB.toml:2:1: ")
    assert info.value.location is not None and info.value.location.path == "ws/MB.toml"


def test_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    assert error(tmp_path, "build = 3\n") == (
        "MB.toml:1:1: 'build' must be a table, got the integer 3")


@pytest.mark.parametrize("jobs", [0, -1])
def test_jobs_must_be_positive(tmp_path: Path, jobs: int) -> None:
    with pytest.raises(ConfigError):
        load(tmp_path, f"[build]\njobs = {jobs}\n")


# --- environment overrides ----------------------------------------------------------


def test_environment_overrides_mb_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_CACHE_DIR", "/env/cache")
    monkeypatch.setenv("MB_REMOTE_CACHE", "http://env-cache:9000")
    monkeypatch.setenv("MB_COMFY_URL", "http://env-comfy:8188")
    config = load(tmp_path, (
        '[cache]\ndir = "toml/cache"\nremote = "http://toml:1"\nmax_size = "1GB"\n'
        '[providers.comfy]\nurl = "http://toml-comfy:1"\ncheckpoint = "sd.safetensors"\n'))
    assert config.cache == CacheSection(dir="/env/cache", max_size="1GB",
                                        remote="http://env-cache:9000")
    assert config.providers == {"comfy": {"url": "http://env-comfy:8188",
                                          "checkpoint": "sd.safetensors"}}


def test_comfy_url_from_the_environment_alone(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_COMFY_URL", "http://127.0.0.1:9999")
    assert load(tmp_path, "").providers == {"comfy": {"url": "http://127.0.0.1:9999"}}


def test_empty_environment_values_are_ignored(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.setenv(name, "")
    config = load(tmp_path, '[cache]\ndir = "c"\n')
    assert config.cache.dir == "c"
    assert config.providers == {}


def test_apply_environment_does_not_mutate_the_config() -> None:
    original = Config(providers={"comfy": {"url": "http://a"}})
    changed = apply_environment(original, {"MB_COMFY_URL": "http://b", "MB_CACHE_DIR": "/c"})
    assert original.providers == {"comfy": {"url": "http://a"}}
    assert original.cache.dir == ".mb/cache"
    assert changed.providers == {"comfy": {"url": "http://b"}}
    assert changed.cache.dir == "/c"
    assert apply_environment(original, {}) == original


@pytest.mark.parametrize("value, problem", [
    (".", "must name a folder, not the workspace root (the default is '.mb/cache')"),
    ("{root}", "must name a folder, not the workspace root (the default is '.mb/cache')"),
    ("mb-out/c", "may not be inside mb-out/, which `mb clean` removes"),
    ("{root}/mb-out", "may not be inside mb-out/, which `mb clean` removes"),
    ("afile", "names a file; name a folder (it is made if missing)"),
])
def test_mb_cache_dir_is_judged_like_the_mb_toml_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    """SPEC §3: MB_CACHE_DIR overrides `[cache] dir`; the same value is refused the same
    way, by its real path (an absolute spelling of a bad place too), as one line."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("MB_CACHE_DIR", value.format(root=tmp_path))
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "MB.toml"))
    assert str(info.value) == f"MB_CACHE_DIR {problem}, got {value.format(root=tmp_path)!r}"


def test_an_absolute_cache_dir_in_mb_toml_is_judged_by_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "MB.toml").write_text(f'[cache]\ndir = "{tmp_path}/mb-out/x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "MB.toml"))
    assert str(info.value).startswith("MB.toml:2:1: 'cache.dir' may not be inside mb-out/")
    (tmp_path / "MB.toml").write_text(f'[cache]\ndir = "{tmp_path.parent}/shared"\n')
    assert load_config(str(tmp_path / "MB.toml")).cache.dir == f"{tmp_path.parent}/shared"
