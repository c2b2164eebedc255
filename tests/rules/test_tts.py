"""The `tts` rule: real eSpeak NG speech, and the OpenAI protocol against a local server.

Action functions are called directly with an `mb.ActionIO` (fast, and the
samples can be inspected); the end-to-end tests drive `mb build`.
"""

from __future__ import annotations

import array
import io
import json
import math
import re
import statistics
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import mb
from mb.context import RuleContext, TargetOptions
from mb.errors import BuildFileError
from mb.rules import _espeak, _wav, tts

from fake_openai_speech import SAMPLE_RATE, SECONDS_PER_CHAR, VOICES, serve, streamed_wav_header, tone

FOX = "The quick brown fox jumps over the lazy dog."
KEY = "sk-test-0123456789abcdef"


# --- measuring sound ---------------------------------------------------------------------


def read_wav(data: bytes) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(io.BytesIO(data)) as w:
        params = w.getparams()
        samples = array.array("h", w.readframes(w.getnframes()))
    return params, samples


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def fundamental_hz(samples: array.array[int], rate: int) -> float:
    """Median pitch of the loudest frames by autocorrelation (60-400 Hz), at rate/4."""
    q = 4
    low = [sum(samples[i:i + q]) / q for i in range(0, len(samples) - q, q)]
    r, n = rate / q, 256
    lo, hi = int(r / 400), int(r / 60)
    frames = sorted((low[i:i + n] for i in range(0, len(low) - n, n // 2)),
                    key=lambda f: -sum(x * x for x in f))
    found = []
    for frame in frames[:9]:
        corr = [sum(frame[i] * frame[i + lag] for i in range(n - hi)) for lag in range(lo, hi + 1)]
        top = max(corr)
        # The first peak close to the best one is the period, not a multiple of it.
        peak = next((k for k in range(1, len(corr) - 1) if corr[k] >= 0.9 * top
                     and corr[k - 1] <= corr[k] >= corr[k + 1]), corr.index(top))
        found.append(r / (lo + peak))
    return statistics.median(found)


# --- the espeak engine --------------------------------------------------------------------


def espeak_io(tmp_path: Path, text: str | None = FOX, inputs: Sequence[Path] = (), **params: Any
              ) -> mb.ActionIO:
    files = _espeak.find_library()
    out = tmp_path / "out" / "speech.wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"engine": "espeak", "voice": "en-us", "rate": None, "pitch": None,
                              "espeakng_loader": files.version, **params}
    if text is not None:
        values["text"] = text
    return mb.ActionIO(root=tmp_path, inputs=list(inputs), outputs=[out],
                       tools=[Path(files.library), *map(Path, files.core_data)],
                       params=values, providers={})


def speak(tmp_path: Path, text: str | None = FOX, **params: Any) -> tuple[bytes, mb.ActionIO]:
    action = espeak_io(tmp_path, text, **params)
    tts.speak_espeak(action)
    return action.outputs[0].read_bytes(), action


def test_espeak_writes_real_speech(tmp_path):
    data, action = speak(tmp_path)
    params, samples = read_wav(data)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
    duration = params.nframes / params.framerate
    # Nine words at eSpeak's 175 words per minute, plus pauses: about three seconds.
    assert 1.8 < duration < 5.0
    assert action.metadata == {"duration_s": round(duration, 3)}
    assert rms(samples) > 1000
    assert max(map(abs, samples)) > 8000
    # A male voice's pitch, not a tone or noise.
    assert 70 < fundamental_hz(samples, params.framerate) < 200
    # Speech has pauses between words: some 20 ms windows are near silence.
    windows = [samples[i:i + 441] for i in range(0, len(samples) - 441, 441)]
    assert sum(1 for w in windows if rms(w) < 100) >= 3


def test_espeak_is_byte_deterministic_in_one_process(tmp_path):
    first, _ = speak(tmp_path / "a")
    speak(tmp_path / "b", text="Something else entirely, to disturb any leftover state.")
    second, _ = speak(tmp_path / "c")
    assert first == second


def test_espeak_in_threads_gives_the_same_bytes(tmp_path):
    texts = [FOX, "Hello there.", FOX, "Hello there."]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: speak(tmp_path / str(i), text=texts[i])[0], range(4)))
    assert results[0] == results[2] == speak(tmp_path / "alone")[0]
    assert results[1] == results[3] != results[0]


def test_longer_text_gives_longer_audio(tmp_path):
    short, _ = speak(tmp_path / "a", text="Hello there.")
    long, _ = speak(tmp_path / "b", text="Hello there. " + FOX + " " + FOX)
    short_s = read_wav(short)[0].nframes / 22050
    long_s = read_wav(long)[0].nframes / 22050
    assert long_s > 3 * short_s


def test_voice_rate_and_pitch_change_the_audio(tmp_path):
    base, _ = speak(tmp_path / "base")
    british, _ = speak(tmp_path / "gb", voice="en-gb")
    fast, _ = speak(tmp_path / "fast", rate=350)
    slow, _ = speak(tmp_path / "slow", rate=100)
    assert len({base, british, fast, slow}) == 4
    frames = {name: read_wav(data)[0].nframes for name, data in
              (("base", base), ("fast", fast), ("slow", slow))}
    assert frames["fast"] < 0.75 * frames["base"] < 0.75 * 0.75 * frames["slow"]
    low = read_wav(speak(tmp_path / "low", pitch=10)[0])[1]
    high = read_wav(speak(tmp_path / "high", pitch=90)[0])[1]
    assert fundamental_hz(high, 22050) > 1.6 * fundamental_hz(low, 22050)


def test_text_file_input_speaks_its_contents(tmp_path):
    script = tmp_path / "pkg" / "script.txt"
    script.parent.mkdir()
    script.write_text(FOX + "\n", encoding="utf-8")
    action = espeak_io(tmp_path / "file", text=None, inputs=[script])
    tts.speak_espeak(action)
    from_param, _ = speak(tmp_path / "param")
    assert action.outputs[0].read_bytes() == from_param


@pytest.mark.parametrize("content, message", [
    (b"  \n", "text_file pkg/script.txt is empty"),
    (b"caf\xe9", "text_file pkg/script.txt is not UTF-8 text"),
])
def test_unusable_text_file_fails_without_retry(tmp_path, content, message):
    script = tmp_path / "pkg" / "script.txt"
    script.parent.mkdir()
    script.write_bytes(content)
    with pytest.raises(mb.ActionError, match=message) as failure:
        tts.speak_espeak(espeak_io(tmp_path, text=None, inputs=[script]))
    assert failure.value.retryable is False


@pytest.mark.parametrize("voice, message", [
    ("en-uss", "eSpeak NG has no voice 'en-uss'; did you mean 'en-us'"),
    ("english", "eSpeak NG has no voice 'english'; give a language code such as 'en-us'"),
    ("en-us+f33", "eSpeak NG has no voice variant 'f33'; did you mean 'f3'"),
])
def test_unknown_voice_fails_with_a_suggestion(tmp_path, voice, message):
    # eSpeak NG alone would fall back to its default voice and speak the wrong language.
    with pytest.raises(mb.ActionError, match=message) as failure:
        speak(tmp_path, voice=voice)
    assert failure.value.retryable is False


def test_espeak_voice_variants_and_languages(tmp_path):
    female, _ = speak(tmp_path / "f", voice="en-us+f3")
    german, _ = speak(tmp_path / "de", text="Guten Morgen, wie geht es dir?", voice="de")
    assert rms(read_wav(german)[1]) > 1000
    assert fundamental_hz(read_wav(female)[1], 22050) > fundamental_hz(
        read_wav(speak(tmp_path / "m")[0])[1], 22050) * 1.3


# --- the WAV helper -----------------------------------------------------------------------


def test_streamed_wav_header_is_repaired():
    samples = tone(440.0, 0.25)
    fixed, duration = _wav.normalize(streamed_wav_header() + samples)
    params, read = read_wav(fixed)
    assert (params.nchannels, params.framerate, params.nframes) == (1, SAMPLE_RATE, 6000)
    assert read.tobytes() == samples
    assert duration == 0.25
    assert fixed[4:8] == (len(fixed) - 8).to_bytes(4, "little")


def test_wav_with_extra_chunks_keeps_only_the_sound():
    samples = tone(300.0, 0.1)
    plain = io.BytesIO()
    with wave.open(plain, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SAMPLE_RATE)
        w.writeframes(samples)
    data = plain.getvalue()
    info = b"LIST" + (18).to_bytes(4, "little") + b"INFOISFT" + (6).to_bytes(4, "little") + b"x 1.0\0"
    tagged = data[:36] + info + data[36:]  # after "fmt ", before "data"
    assert _wav.normalize(tagged)[0] == data


@pytest.mark.parametrize("body, expected", [
    (b"ID3\x04\x00" + bytes(20), "expected a WAV file (RIFF/WAVE), got an MP3 file"),
    (b'{"error": "nope"}', "got JSON"),
    (b"", "got an empty body"),
    (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "'data' chunk before its 'fmt ' chunk"),
])
def test_non_wav_bodies_are_named(body, expected):
    with pytest.raises(_wav.NotWav, match=re.escape(expected)):
        _wav.normalize(body)


# --- the openai engine against a local server -----------------------------------------------


def openai_io(tmp_path: Path, url: str, text: str = "Hello from the fake server.",
              key_env: str = "TEST_TTS_KEY", **params: Any) -> tuple[mb.ActionIO, io.StringIO]:
    out = tmp_path / "out" / "speech.wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    channel = io.StringIO()
    values = {"engine": "openai", "model": "tts-1", "voice": "alloy", "speed": 1.0,
              "text": text, **params}
    providers = {"tts": {"engine": "openai", "base_url": url, "api_key_env": key_env,
                         "backoff": 0.01}}
    return mb.ActionIO(root=tmp_path, inputs=[], outputs=[out], tools=[], params=values,
                       providers=providers, channel=channel), channel


def test_openai_engine_follows_the_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TTS_KEY", KEY)
    with serve(KEY) as server:
        action, channel = openai_io(tmp_path, server.url + "/v1/", voice="sage", speed=1.5)
        tts.speak_openai(action)
    (request,) = server.requests
    assert request["path"] == "/v1/audio/speech"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == {"model": "tts-1", "input": "Hello from the fake server.",
                               "voice": "sage", "response_format": "wav", "speed": 1.5}
    params, samples = read_wav(action.outputs[0].read_bytes())
    expected = SECONDS_PER_CHAR * len("Hello from the fake server.") / 1.5
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, SAMPLE_RATE)
    assert params.nframes == int(expected * SAMPLE_RATE)
    assert samples.tobytes() == tone(VOICES["sage"], expected)
    assert action.metadata == {"duration_s": round(expected, 3)}
    events = [json.loads(line) for line in channel.getvalue().splitlines()]
    assert [e["type"] for e in events if e["kind"] == "event"] == [
        "provider.request", "provider.response"]
    assert KEY not in channel.getvalue()


def test_openai_bad_key_fails_without_retry_and_without_leaking(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TTS_KEY", "sk-wrong-key-987654321")
    with serve(KEY) as server:
        action, channel = openai_io(tmp_path, server.url)
        with pytest.raises(mb.ActionError) as failure:
            tts.speak_openai(action)
    assert len(server.requests) == 1
    assert failure.value.retryable is False
    assert "401" in str(failure.value) and "Incorrect API key provided" in str(failure.value)
    for text in (str(failure.value), channel.getvalue(), json.dumps(action.metadata)):
        assert "sk-wrong-key-987654321" not in text
    assert not action.outputs[0].exists()


def test_openai_rejected_request_reports_the_servers_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TTS_KEY", KEY)
    with serve(KEY) as server:
        action, _ = openai_io(tmp_path, server.url, voice="en-us")
        with pytest.raises(mb.ActionError, match="400.*Invalid value: 'en-us'") as failure:
            tts.speak_openai(action)
    assert failure.value.retryable is False


def test_openai_answer_that_is_not_wav_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TTS_KEY", KEY)
    with serve(KEY) as server:
        server.force_mp3 = True
        action, _ = openai_io(tmp_path, server.url)
        with pytest.raises(mb.ActionError, match=r"answered POST /v1/audio/speech with audio/mpeg,"
                           r" not a WAV file: expected a WAV file \(RIFF/WAVE\), got an MP3 file"
                           ) as failure:
            tts.speak_openai(action)
    assert failure.value.retryable is False
    assert not action.outputs[0].exists()


def test_openai_missing_key_variable_is_reported_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_TTS_KEY", raising=False)
    with serve(KEY) as server:
        action, _ = openai_io(tmp_path, server.url)
        with pytest.raises(mb.ActionError, match="API key variable TEST_TTS_KEY"):
            tts.speak_openai(action)
    assert server.requests == []


def test_openai_keyless_server(tmp_path):
    with serve(KEY) as server:
        action, _ = openai_io(tmp_path, server.url, key_env="")
        with pytest.raises(mb.ActionError, match="401"):
            tts.speak_openai(action)
    assert "Authorization" not in server.requests[0]["headers"]


# --- analysis: what the rule declares ---------------------------------------------------------


class _Resolver:
    def paths_of(self, label: mb.Label) -> tuple[str, ...]:
        return (label.path(),)


def declare(providers: dict[str, Any] | None = None, **attributes: Any) -> RuleContext:
    """Run the rule's analysis for `//p:speech` and return the context it filled in."""
    if "text_file" in attributes:
        attributes["text_file"] = mb.File(mb.Label("p", attributes["text_file"]))
    ctx = RuleContext(mb.Label("p", "speech"), _Resolver(), TargetOptions(), providers or {},
                      "p/BUILD.toml")
    tts.tts.impl(ctx, tts.TtsAttrs(**attributes))
    return ctx


def test_espeak_action_keys_text_voice_and_the_library():
    (action,) = declare(text="Hi.", voice="de", rate=120, pitch=70).actions
    files = _espeak.find_library()
    assert action.function.qualname == "speak_espeak"
    assert action.params == {"engine": "espeak", "text": "Hi.", "voice": "de", "rate": 120,
                             "pitch": 70, "espeakng_loader": files.version}
    assert action.outputs == ("p/speech.wav",)
    assert [(t.name, t.path) for t in action.tools] == [
        ("libespeak-ng.so", files.library), *((Path(p).name, p) for p in files.core_data)]
    assert action.secret_env == ()


def test_text_file_is_an_input_and_voice_defaults_to_en_us():
    (action,) = declare(text_file="script.txt").actions
    assert action.inputs == ("p/script.txt",)
    assert "text" not in action.params and action.params["voice"] == "en-us"


def test_openai_action_keys_the_model_but_not_the_url_or_key():
    settings = {"engine": "openai", "base_url": "http://tts.internal:8000/v1",
                "api_key_env": "TEST_TTS_KEY", "model": "gpt-4o-mini-tts", "voice": "coral"}
    (action,) = declare({"tts": settings}, text="Hi.", rate=262).actions
    assert action.function.qualname == "speak_openai"
    assert action.params == {"engine": "openai", "text": "Hi.", "model": "gpt-4o-mini-tts",
                             "voice": "coral", "speed": 1.4971}
    assert action.secret_env == ("TEST_TTS_KEY",)
    assert action.tools == ()
    (default,) = declare({"tts": {"engine": "openai"}}, text="Hi.").actions
    assert default.params["model"] == "tts-1" and default.params["voice"] == "alloy"
    assert default.params["speed"] == 1.0 and default.secret_env == ("OPENAI_API_KEY",)
    (keyless,) = declare({"tts": {"engine": "openai", "api_key_env": ""}}, text="Hi.").actions
    assert keyless.secret_env == ()


def test_text_file_naming_several_files_is_an_error():
    class TwoOutputs:
        def paths_of(self, label: mb.Label) -> tuple[str, ...]:
            return ("p/a.txt", "p/b.txt")

    ctx = RuleContext(mb.Label("p", "speech"), TwoOutputs(), TargetOptions(), {}, "p/BUILD.toml")
    attributes = tts.TtsAttrs(text_file=mb.File(mb.Label("p", "both")))
    with pytest.raises(BuildFileError, match="stands for 2 files where one is expected"):
        tts.tts.impl(ctx, attributes)


def test_engine_attribute_wins_over_mb_toml():
    (action,) = declare({"tts": {"engine": "openai"}}, text="Hi.", engine="espeak").actions
    assert action.params["engine"] == "espeak"


@pytest.mark.parametrize("providers, attributes, message", [
    ({}, {"rate": 1000}, "'rate' must be between 80 and 450 words per minute for the espeak"
                         " engine, got 1000"),
    ({}, {"engine": "festival"}, "'engine' must be one of 'espeak', 'openai', got 'festival'"),
    ({"tts": {"engine": "piper"}}, {},
     "[providers.tts] engine in MB.toml must be one of 'espeak', 'openai', got 'piper'"),
    ({}, {"engine": "openai", "pitch": 20}, "'pitch' is not supported by the openai engine"),
    ({}, {"engine": "openai", "rate": 30}, "'rate' must be between 44 and 700 words per minute"
                                           " for the openai engine"),
    ({}, {"voice": "en-uss"}, "eSpeak NG has no voice 'en-uss'; did you mean 'en-us'"),
    ({}, {"voice": "en-us+f33"}, "eSpeak NG has no voice variant 'f33'; did you mean 'f3'"),
    ({"tts": {"engine": "openai", "api_key_env": 7}}, {},
     "[providers.tts] api_key_env in MB.toml must be the name of an environment variable"),
])
def test_rule_errors(providers, attributes, message):
    with pytest.raises(mb.RuleError, match=re.escape(message)):
        declare(providers, text="Hi.", **attributes)


@pytest.mark.parametrize("attributes, message", [
    ({"text": "hi", "text_file": mb.File(mb.Label("p", "x.txt"))},
     "give exactly one of 'text' and 'text_file'"),
    ({}, "give exactly one of 'text' and 'text_file'"),
    ({"text": "  "}, "'text' is empty"),
    ({"text": "hi", "voice": ""}, "'voice' is empty"),
    ({"text": "hi", "pitch": 120}, "'pitch' must be between 0 and 99, got 120"),
    ({"text": "hi", "rate": 0}, "'rate' must be a positive number of words per minute, got 0"),
])
def test_attribute_validation(attributes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tts.TtsAttrs(**attributes)


# --- end to end: `mb build` -----------------------------------------------------------------

NARRATION = {
    "shorts/script.txt": "Ducks float because air sacs and oily feathers keep them light.\n",
    "shorts/BUILD.toml": """
[line]
rule = "genrule"
outs = ["line.txt"]
cmd = "echo Hello world. > $@"

[hello]
rule = "tts"
text_file = ":line"

[narration]
rule = "tts"
text_file = "script.txt"
voice = "en-gb"
rate = 190
pitch = 40
""",
}


def action_metadata(ws: Any, target: str) -> dict[str, Any]:
    """The metadata the last build recorded for `target`'s action, from its cached result."""
    build = (ws.path / ".mb" / "builds" / "current").read_text().strip()
    manifest = json.loads((ws.path / ".mb" / "builds" / f"{build}.json").read_text())
    (key,) = [a["key"] for a in manifest["actions"] if a["target"] == target]
    packs = sorted(p for p in (ws.path / ".mb" / "cache" / "ac").glob("*.pack")
                   if not p.name.startswith("."))  # not a write in progress
    found = [result["metadata"] for pack in packs for line in pack.read_text().splitlines()
             if (result := json.loads(line))["key"] == key]
    assert found, f"no cached result for {target} ({key})"
    return found[-1]


def test_build_speaks_with_espeak_and_caches(mb_workspace):
    ws = mb_workspace(NARRATION)
    result = ws.run("build", "//shorts:all")
    assert result.exit_code == 0, result.stderr
    assert "mb-out/shorts/narration.wav" in result.stdout
    narration = ws.out("shorts/narration.wav").read_bytes()
    params, samples = read_wav(narration)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
    assert 2.0 < params.nframes / 22050 < 6.0
    assert rms(samples) > 1000
    assert action_metadata(ws, "//shorts:narration") == {
        "duration_s": round(params.nframes / 22050, 3)}

    assert ws.run("build", "//shorts:all").exit_code == 0
    assert ws.executed() == []

    ws.write({"shorts/script.txt": "Ducks float.\n"})
    assert ws.run("build", "//shorts:all").exit_code == 0
    assert ws.executed() == ["//shorts:narration"]
    assert read_wav(ws.out("shorts/narration.wav").read_bytes())[0].nframes < params.nframes


def test_build_output_is_byte_identical_in_another_workspace(mb_workspace):
    files = {"a/BUILD.toml": '[hi]\nrule = "tts"\ntext = "Same words, same bytes."\n'}
    first, second = mb_workspace(files, subdir="one"), mb_workspace(files, subdir="two")
    assert first.run("build").exit_code == 0
    assert second.run("build").exit_code == 0
    assert second.executed() == ["//a:hi"]  # its own cache: synthesised again, not copied
    assert first.out("a/hi.wav").read_bytes() == second.out("a/hi.wav").read_bytes()


def test_bad_attributes_are_reported_at_the_attribute(mb_workspace):
    ws = mb_workspace({
        "p/BUILD.toml": '[fine]\nrule = "tts"\ntext = "hi"\n\n[both]\nrule = "tts"\n'
                        'text = "hi"\ntext_file = "x.txt"\n',
        "q/BUILD.toml": '[speech]\nrule = "tts"\ntext = "hi"\nrate = 1000\n',
    })
    result = ws.run("build", "//p:all")
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert result.exit_code == 2
    assert len(errors) == 1 and errors[0].startswith("p/BUILD.toml:5:1: ")
    assert errors[0].endswith("give exactly one of 'text' and 'text_file'")
    result = ws.run("build", "//q:speech")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "q/BUILD.toml:4:1: 'rate' must be between 80 and 450 words per minute for the espeak"
        " engine, got 1000")


def test_an_unknown_espeak_voice_is_a_located_mistake_before_anything_runs(mb_workspace):
    """eSpeak NG would speak an unknown voice in its default one; mb checks the name at
    analysis, where the mistake is the user's (exit 2), not at build time."""
    ws = mb_workspace({"p/BUILD.toml": '[line]\nrule = "genrule"\nouts = ["l.txt"]\n'
                                       'cmd = "echo > $@"\n\n[speech]\nrule = "tts"\n'
                                       'text = "hi"\nvoice = "en-uss"\n'})
    result = ws.run("build")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "p/BUILD.toml:9:1: eSpeak NG has no voice 'en-uss'; did you mean 'en-us' or"
        " 'en-us-nyc' or 'en-shaw'?")
    assert ws.executed() == []


def openai_workspace(mb_workspace: Any, url: str) -> Any:
    return mb_workspace({
        "MB.toml": f'[providers.tts]\nengine = "openai"\nbase_url = "{url}"\n'
                   'api_key_env = "TEST_TTS_KEY"\nmodel = "tts-1-hd"\n',
        "a/line.txt": "Welcome back.",
        "a/BUILD.toml": '[intro]\nrule = "tts"\ntext_file = "line.txt"\nvoice = "nova"\nrate = 350\n',
    })


def test_build_with_openai_engine(mb_workspace):
    with serve(KEY) as server:
        ws = openai_workspace(mb_workspace, server.url)
        result = ws.run("build", env={"TEST_TTS_KEY": KEY})
        assert result.exit_code == 0, result.stderr
    (request,) = server.requests
    assert request["json"] == {"model": "tts-1-hd", "input": "Welcome back.", "voice": "nova",
                               "response_format": "wav", "speed": 2.0}
    seconds = SECONDS_PER_CHAR * len("Welcome back.") / 2.0
    params, samples = read_wav(ws.out("a/intro.wav").read_bytes())
    assert params.framerate == SAMPLE_RATE
    assert samples.tobytes() == tone(VOICES["nova"], seconds)
    assert action_metadata(ws, "//a:intro") == {"duration_s": round(seconds, 3)}
    types = [e["type"] for e in ws.last_build_events()]
    assert "provider.request" in types and "provider.response" in types
    for path in (ws.path / ".mb").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path

    # The server's URL is not part of the key: another server, same result from the cache.
    with serve(KEY) as other:
        ws.write({"MB.toml": ws.path.joinpath("MB.toml").read_text().replace(server.url, other.url)})
        assert ws.run("build", env={"TEST_TTS_KEY": KEY}).exit_code == 0
    assert other.requests == [] and ws.executed() == []


def test_build_with_openai_engine_and_a_bad_key_fails_once(mb_workspace):
    with serve(KEY) as server:
        ws = openai_workspace(mb_workspace, server.url)
        result = ws.run("build", env={"TEST_TTS_KEY": "sk-not-the-right-one-42"})
    assert result.exit_code == 1
    assert "Incorrect API key provided" in result.stdout + result.stderr
    assert len(server.requests) == 1
    failed = [e for e in ws.last_build_events() if e["type"] == "action.failed"]
    assert len(failed) == 1 and failed[0]["target"] == "//a:intro"
    assert "sk-not-the-right-one-42" not in (ws.path / ".mb" / "events.jsonl").read_text()
    assert not ws.out("a/intro.wav").exists()


def test_the_server_url_is_base_url_or_url_as_other_providers_spell_it():
    from mb.rules.tts import DEFAULT_OPENAI_URL, _base_url

    assert _base_url({"base_url": "http://a:1/v1/"}) == "http://a:1"
    assert _base_url({"url": "http://b:2"}) == "http://b:2"
    assert _base_url({"base_url": "http://a:1", "url": "http://b:2"}) == "http://a:1"
    assert _base_url({}) == DEFAULT_OPENAI_URL.rstrip("/")
