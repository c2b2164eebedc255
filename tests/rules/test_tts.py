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
from pathlib import Path
from typing import Any

import pytest

import mb
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


def espeak_io(tmp_path: Path, text: str | None = FOX, inputs: list[Path] = (), **params: Any
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
