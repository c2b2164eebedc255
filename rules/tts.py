"""`tts`: text to speech, one WAV file, with eSpeak NG (embedded) or an OpenAI-compatible API.

Registered through the `mb` entry-point group like any third-party plugin.
Everything the sound depends on is keyed: the engine, voice, rate and pitch
and the text are params (a `text_file` is an input); for `espeak` the
library and its phoneme data are tools and the wheel's version a param;
for `openai` the model is a param. The server URL and the API key are read
at run time and never keyed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

import mb
from mb.context import OutputFile

if TYPE_CHECKING:
    from mb.rules import _espeak

ENGINES: Final = ("espeak", "openai")
DEFAULT_ESPEAK_VOICE: Final = "en-us"
DEFAULT_OPENAI_VOICE: Final = "alloy"
DEFAULT_OPENAI_MODEL: Final = "tts-1"
DEFAULT_OPENAI_URL: Final = "https://api.openai.com"
DEFAULT_KEY_ENV: Final = "OPENAI_API_KEY"
SPEECH_PATH: Final = "/v1/audio/speech"
#: OpenAI's `speed` range; `rate` (words per minute) maps to speed = rate / WPM_AT_SPEED_1.
SPEED_RANGE: Final = (0.25, 4.0)
#: Words per minute at speed 1: eSpeak NG's default rate, so a `rate` sounds alike on both.
WPM_AT_SPEED_1: Final = 175


def _positive_rate(_instance: object, _attribute: object, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"'rate' must be a positive number of words per minute, got {value!r}")


def _pitch_range(_instance: object, _attribute: object, value: int | None) -> None:
    from mb.rules import _espeak  # ctypes and the library finder: only with tts targets

    low, high = _espeak.PITCH_RANGE
    if value is not None and not low <= value <= high:
        raise ValueError(f"'pitch' must be between {low} and {high}, got {value!r}")


@attrs.frozen
class TtsAttrs:
    text: str | None = None
    text_file: mb.File | None = None
    voice: str | None = None
    rate: int | None = attrs.field(default=None, validator=_positive_rate)
    pitch: int | None = attrs.field(default=None, validator=_pitch_range)
    engine: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.text is None) == (self.text_file is None):
            raise ValueError("give exactly one of 'text' and 'text_file'")
        if self.text is not None and not self.text.strip():
            raise ValueError("'text' is empty")
        if self.voice is not None and not self.voice.strip():
            raise ValueError("'voice' is empty")


@mb.rule("tts", attrs=TtsAttrs, version="1")
def tts(ctx: mb.RuleContext, a: TtsAttrs) -> None:
    """Speak `text` (or the contents of `text_file`) into `<name>.wav`."""
    settings = ctx.provider("tts")
    engine = a.engine or settings.get("engine") or "espeak"
    if engine not in ENGINES:
        where = "'engine'" if a.engine else "[providers.tts] engine in MB.toml"
        raise mb.RuleError(
            f"{where} must be one of {', '.join(repr(e) for e in ENGINES)}, got {engine!r}",
            attribute="engine" if a.engine else None)
    out = ctx.output(f"{ctx.name}.wav")
    # ctx.path: a target with several outputs is an error, not "speak the first one".
    inputs = [ctx.path(a.text_file)] if a.text_file is not None else []
    params: dict[str, Any] = {"engine": engine}
    if a.text is not None:
        params["text"] = a.text
    if engine == "espeak":
        _declare_espeak(ctx, a, out, inputs, params)
    else:
        _declare_openai(ctx, a, settings, out, inputs, params)


def _declare_espeak(ctx: mb.RuleContext, a: TtsAttrs, out: OutputFile,
                    inputs: list[str], params: dict[str, Any]) -> None:
    from mb.rules import _espeak

    low, high = _espeak.RATE_RANGE
    if a.rate is not None and not low <= a.rate <= high:
        raise mb.RuleError(f"'rate' must be between {low} and {high} words per minute for the"
                           f" espeak engine, got {a.rate!r}", attribute="rate")
    try:
        files = _library_files()
    except ImportError:
        raise mb.RuleError("the espeak engine needs the Python package espeakng-loader"
                           " (pip install espeakng-loader)") from None
    if a.voice is not None:  # eSpeak NG would speak an unknown one in its default voice
        try:
            _espeak.resolve_voice(_espeak.installed_catalog(files.library, files.data_dir),
                                  a.voice)
        except _espeak.UnknownVoice as exc:
            raise mb.RuleError(str(exc), attribute="voice") from None
        except OSError as exc:  # a broken install: the action would fail the same way
            raise mb.RuleError(f"the espeak engine cannot start: {exc}") from None
    tools = [ctx.tool(files.library), *(ctx.tool(path) for path in files.core_data)]
    params.update(voice=a.voice or DEFAULT_ESPEAK_VOICE, rate=a.rate, pitch=a.pitch,
                  espeakng_loader=files.version)
    ctx.call(speak_espeak, inputs=inputs, outputs=[out], params=params, tools=tools,
             description=f"tts (espeak) -> {out.path.rsplit('/', 1)[-1]}")


def _declare_openai(ctx: mb.RuleContext, a: TtsAttrs, settings: Mapping[str, Any],
                    out: OutputFile, inputs: list[str], params: dict[str, Any]) -> None:
    if a.pitch is not None:
        raise mb.RuleError("'pitch' is not supported by the openai engine; remove it or use"
                           " engine = \"espeak\"", attribute="pitch")
    speed = 1.0
    if a.rate is not None:
        speed = round(a.rate / WPM_AT_SPEED_1, 4)
        low, high = SPEED_RANGE
        if not low <= speed <= high:
            raise mb.RuleError(
                f"'rate' must be between {int(low * WPM_AT_SPEED_1) + 1} and"
                f" {int(high * WPM_AT_SPEED_1)} words per minute for the openai engine"
                f" (speed {low}-{high} x {WPM_AT_SPEED_1} wpm), got {a.rate!r}",
                attribute="rate")
    key_env = settings.get("api_key_env", DEFAULT_KEY_ENV)
    if not isinstance(key_env, str):
        raise mb.RuleError(f"[providers.tts] api_key_env in MB.toml must be the name of an"
                           f" environment variable, got {key_env!r}")
    params.update(model=str(settings.get("model", DEFAULT_OPENAI_MODEL)),
                  voice=a.voice or str(settings.get("voice", DEFAULT_OPENAI_VOICE)),
                  speed=speed)
    ctx.call(speak_openai, inputs=inputs, outputs=[out], params=params,
             secret_env=[key_env] if key_env else [], network=True,
             description=f"tts (openai) -> {out.path.rsplit('/', 1)[-1]}")


@functools.lru_cache(maxsize=1)
def _library_files() -> _espeak.LibraryFiles:
    from mb.rules import _espeak

    return _espeak.find_library()


# --- actions (run in the sandbox worker) ------------------------------------------------


def _text_of(io: mb.ActionIO) -> str:
    """The text to speak: the `text` param, or the UTF-8 contents of the one input."""
    if "text" in io.params:
        return str(io.params["text"]).strip()
    source = io.inputs[0]
    try:
        text = source.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise mb.ActionError(f"text_file {source.relative_to(io.root)} is not UTF-8 text:"
                             f" {exc.reason} at byte {exc.start}", retryable=False) from None
    if not text:
        raise mb.ActionError(f"text_file {source.relative_to(io.root)} is empty",
                             retryable=False)
    return text


def speak_espeak(io: mb.ActionIO) -> None:
    """Synthesise with the embedded eSpeak NG and write a mono 16-bit WAV.

    `io.tools` is the library, then its core data files, whose folder is the
    data directory eSpeak NG is started with.
    """
    from mb.rules import _espeak, _wav

    library, data_dir = io.tools[0], io.tools[1].parent
    text = _text_of(io)
    speech = _espeak.synthesize(library, data_dir, text, str(io.params["voice"]),
                                rate=io.params.get("rate"), pitch=io.params.get("pitch"))
    if not speech.samples:
        raise mb.ActionError("eSpeak NG produced no audio", retryable=False)
    duration = _wav.write_pcm16(io.outputs[0], speech.samples, speech.sample_rate)
    io.set_metadata("duration_s", round(duration, 3))


def speak_openai(io: mb.ActionIO) -> None:
    """POST the text to an OpenAI-compatible `/v1/audio/speech` and keep the WAV it returns.

    A 4xx answer (a bad key, an unknown voice) fails at once; 5xx answers,
    timeouts and refused connections are retried by `ProviderClient`. A body
    that is not a WAV (the server ignored `response_format`) is an error
    rather than a file with a lying extension.
    """
    from mb.providers import ProviderClient, provider_settings
    from mb.rules import _wav

    base_url = _base_url(io.provider("tts"))
    settings = provider_settings(io, "tts", timeout=60.0, retries=3)
    headers = {"Accept": "audio/wav"}
    key_env = settings.extra.get("api_key_env", DEFAULT_KEY_ENV)
    if key_env:
        key = io.secret(key_env)
        if not key:
            raise mb.ActionError(
                f"the API key variable {key_env} (api_key_env in [providers.tts]) is not set;"
                " export it, or set api_key_env = \"\" for a server without keys",
                retryable=False)
        headers["Authorization"] = f"Bearer {key}"
    payload = {"model": io.params["model"], "input": _text_of(io), "voice": io.params["voice"],
               "response_format": "wav", "speed": io.params["speed"]}
    with ProviderClient(io, "tts", base_url, settings.timeout, settings.retries,
                        settings.breaker_threshold, settings.breaker_cooldown,
                        backoff=settings.backoff) as client:
        response = client.request("POST", SPEECH_PATH, json=payload, headers=headers)
        server = client.server  # the host only: a URL may carry a user and password
    try:
        data, duration = _wav.normalize(response.content)
    except _wav.NotWav as exc:
        kind = response.headers.get("content-type", "no content type")
        raise mb.ActionError(f"{server} answered POST {SPEECH_PATH} with {kind}, not a WAV"
                             f" file: {exc}", retryable=False) from None
    io.outputs[0].write_bytes(data)
    io.set_metadata("duration_s", round(duration, 3))


def _base_url(settings: Mapping[str, Any]) -> str:
    """`[providers.tts] base_url` without a trailing `/` or `/v1` (OpenAI SDKs include it).

    `url`, the key the other providers read (`[providers.comfy] url`), is taken
    when `base_url` is not given: written that way it was silently ignored.
    """
    url = settings.get("base_url") or settings.get("url") or DEFAULT_OPENAI_URL
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise mb.ActionError(f"[providers.tts] base_url must be an http:// or https:// URL,"
                             f" got {url!r}", retryable=False)
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [tts]
