"""`ffmpeg_concat`: the action on real images, WAVs and clips; MP4s checked by decoding them."""

from __future__ import annotations

import math
import re
import struct
import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

import mb
from mb.rules import ffmpeg
from mb.rules._ffmpeg_plan import plan_segments
from mb.rules._media_probe import ProbeError, ffmpeg_duration, media_duration

FFMPEG = Path(imageio_ffmpeg.get_ffmpeg_exe())
W, H, FPS = 64, 112, 10


# --- media made for the tests -------------------------------------------------------

def make_png(path: Path, colour: str, size: tuple[int, int] = (W, H)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def make_wav(path: Path, seconds: float, freq: float | None = 440.0, rate: int = 22050) -> Path:
    """A mono 16-bit WAV: a sine at `freq`, or silence when freq is None."""
    frames = round(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", 0 if freq is None else int(12000 * math.sin(2 * math.pi * freq * i / rate)))
            for i in range(frames)))
    return path


def make_clip(path: Path, colour: str, seconds: float, size: str = "32x32") -> Path:
    subprocess.run([str(FFMPEG), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c={colour}:s={size}:r=25", "-t", str(seconds), "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", str(path)], check=True)
    return path


def concat(root: Path, srcs: list[str], audio: list[str] = (), image_duration: float | None = None,
           out: str = "out.mp4") -> Path:
    action = mb.ActionIO(
        root=root, inputs=[root / p for p in dict.fromkeys([*srcs, *audio])],
        outputs=[root / out], tools=[FFMPEG],
        params={"srcs": srcs, "audio": list(audio), "width": W, "height": H, "fps": FPS,
                "image_duration": image_duration, "encoder": {}},
        providers={},
    )
    ffmpeg.concat_media(action)
    return root / out


# --- reading the result back ---------------------------------------------------------

def describe(path: Path) -> str:
    return subprocess.run([str(FFMPEG), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr


def frames_rgb(path: Path) -> list[bytes]:
    raw = subprocess.run([str(FFMPEG), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    size = W * H * 3
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def pixel(frame: bytes, x: int, y: int) -> tuple[int, int, int]:
    i = (y * W + x) * 3
    return frame[i], frame[i + 1], frame[i + 2]


def close(rgb: tuple[int, int, int], want: tuple[int, int, int], tol: int = 24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, want, strict=True))


def audio_rms(path: Path, start: float, end: float) -> float:
    raw = subprocess.run([str(FFMPEG), "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "8000", "-"], capture_output=True, check=True).stdout
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)[int(start * 8000):int(end * 8000)]
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# --- the action ----------------------------------------------------------------------

def test_images_share_the_audio_in_order_as_h264_and_aac(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    make_png(tmp_path / "b.png", "lime")
    make_wav(tmp_path / "voice.wav", 1.0)
    out = concat(tmp_path, ["a.png", "b.png"], ["voice.wav"])
    info = describe(out)
    assert "Duration: 00:00:01.00" in info
    assert re.search(r"Video: h264 .*yuv420p.*, 64x112", info)
    assert re.search(r"Audio: aac .*48000 Hz, stereo", info)
    assert "10 fps" in info
    frames = frames_rgb(out)
    assert len(frames) == 10
    assert all(close(pixel(f, 32, 56), RED) for f in frames[:5])
    assert all(close(pixel(f, 32, 56), GREEN) for f in frames[5:])
    assert audio_rms(out, 0.1, 0.9) > 3000, "the narration is in the soundtrack"


def test_a_jpeg_does_not_make_the_video_full_range(tmp_path: Path) -> None:
    """A JPEG decodes as full-range yuvj420p; the video is BT.709 limited range whatever
    its sources are, and the colours survive the conversion."""
    from PIL import Image

    Image.new("RGB", (W, H), RED).save(tmp_path / "photo.jpg", quality=95)
    make_png(tmp_path / "b.png", "lime")
    out = concat(tmp_path, ["photo.jpg", "b.png"])
    assert re.search(r"Video: h264 .*yuv420p\(tv, bt709", describe(out))
    frames = frames_rgb(out)
    assert close(pixel(frames[0], 32, 56), RED)
    assert close(pixel(frames[-1], 32, 56), GREEN)


def test_two_runs_are_byte_identical(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    make_clip(tmp_path / "c.mp4", "blue", 0.4)
    make_wav(tmp_path / "voice.wav", 1.0)
    first = concat(tmp_path, ["a.png", "c.mp4"], ["voice.wav"], out="one.mp4").read_bytes()
    second = concat(tmp_path, ["a.png", "c.mp4"], ["voice.wav"], out="two.mp4").read_bytes()
    assert first == second
    assert b"x264 - core" not in first, "the x264 settings SEI is removed"
    assert b"Lavf" not in first, "no muxer version string"


def test_clips_keep_their_length_and_are_padded_to_the_frame(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    make_clip(tmp_path / "c.mp4", "blue", 0.4)
    make_wav(tmp_path / "voice.wav", 1.0)
    frames = frames_rgb(concat(tmp_path, ["c.mp4", "a.png"], ["voice.wav"]))
    assert len(frames) == 10
    clip, still = frames[:4], frames[4:]
    assert all(close(pixel(f, 32, 56), BLUE, 40) for f in clip)
    assert all(close(pixel(f, 32, 2), (0, 0, 0)) for f in clip), "a square clip is letterboxed"
    assert all(close(pixel(f, 32, 56), RED) for f in still)


def test_images_of_another_shape_are_fitted_not_stretched(tmp_path: Path) -> None:
    make_png(tmp_path / "wide.jpg", "lime", (128, 64))
    frames = frames_rgb(concat(tmp_path, ["wide.jpg"], image_duration=0.5))
    assert len(frames) == 5
    assert close(pixel(frames[0], 32, 56), GREEN)
    assert close(pixel(frames[0], 32, 5), (0, 0, 0))


def test_several_wavs_play_one_after_the_other(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    make_wav(tmp_path / "tone.wav", 0.6)
    make_wav(tmp_path / "quiet.wav", 0.6, freq=None, rate=16000)
    out = concat(tmp_path, ["a.png"], ["tone.wav", "quiet.wav"])
    assert "Duration: 00:00:01.20" in describe(out)
    assert audio_rms(out, 0.1, 0.5) > 3000
    assert audio_rms(out, 0.75, 1.15) < 100


def test_without_audio_images_last_two_seconds_over_a_silent_track(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    out = concat(tmp_path, ["a.png", "a.png"])
    info = describe(out)
    assert "Duration: 00:00:04.00" in info
    assert "Audio: aac" in info
    assert audio_rms(out, 0.0, 4.0) < 10


def test_explicit_image_duration_pads_short_audio_with_silence(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    make_wav(tmp_path / "voice.wav", 0.5)
    out = concat(tmp_path, ["a.png"], ["voice.wav"], image_duration=1.5)
    assert "Duration: 00:00:01.50" in describe(out)
    assert audio_rms(out, 0.1, 0.4) > 3000
    assert audio_rms(out, 0.8, 1.4) < 100


def test_ffmpeg_failure_carries_its_stderr_tail(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(mb.ActionError, match=r"ffmpeg exited with status \d+:\n.*") as info:
        concat(tmp_path, ["broken.png"], image_duration=1.0)
    assert info.value.retryable is False
    message = str(info.value)
    assert "Invalid data found when processing input" in message
    assert " @ 0x" not in message, "object addresses are dropped: the message is stable"
    assert len(message.splitlines()) <= 22


def test_unreadable_audio_is_a_probe_error(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png", "red")
    (tmp_path / "voice.mp3").write_bytes(b"nothing here")
    with pytest.raises(mb.ActionError, match="voice.mp3: ffmpeg reports no duration"):
        concat(tmp_path, ["a.png"], ["voice.mp3"])


# --- pure parts ----------------------------------------------------------------------

def test_probe_reads_wav_exactly_and_clips_from_the_duration_line(tmp_path: Path) -> None:
    assert media_duration(make_wav(tmp_path / "v.wav", 1.234), FFMPEG) == pytest.approx(1.234, abs=1e-4)
    assert ffmpeg_duration(make_clip(tmp_path / "c.mp4", "red", 0.4), FFMPEG) == pytest.approx(0.4, abs=0.05)
    with pytest.raises(ProbeError):
        ffmpeg_duration(tmp_path / "absent.mp4", FFMPEG)


def test_plan_splits_audio_left_after_clips_in_whole_frames() -> None:
    segments, note = plan_segments(["a.png", "c.mp4", "b.png", "d.png"], [1.0], 4.05, 10, None)
    assert [s.frames for s in segments] == [10, 10, 10, 11]
    assert sum(s.frames for s in segments) == 41, "rounded up: the last word is never cut"
    assert "3.050 s of audio shared by 3 images" in note


def test_plan_falls_back_to_two_seconds_when_clips_outlast_the_audio() -> None:
    segments, note = plan_segments(["c.mp4", "a.png"], [3.0], 2.0, 10, None)
    assert [s.frames for s in segments] == [30, 20]
    assert note.startswith("the clips last longer than the audio")


# --- through the mb command -----------------------------------------------------------

def test_build_concatenates_cards_and_narration(mb_workspace) -> None:
    files: dict[str, str | bytes] = {
        "v/BUILD.toml": f'[final]\nrule = "ffmpeg_concat"\nsrcs = ["a.png", "b.png"]\n'
                        f'audio = ["voice.wav"]\nwidth = {W}\nheight = {H}\nfps = {FPS}\n',
    }
    ws = mb_workspace(files)
    make_png(ws.path / "v/a.png", "red")
    make_png(ws.path / "v/b.png", "lime")
    make_wav(ws.path / "v/voice.wav", 1.0)
    result = ws.run("build", "//v:final")
    assert result.exit_code == 0, result.stderr
    frames = frames_rgb(ws.out("v/final.mp4"))
    assert len(frames) == 10 and close(pixel(frames[9], 32, 56), GREEN)


def test_build_rejects_a_src_that_is_not_an_image_or_clip(mb_workspace) -> None:
    ws = mb_workspace({"v/notes.txt": "x", "v/BUILD.toml":
                       '[final]\nrule = "ffmpeg_concat"\nsrcs = ["notes.txt"]\n'})
    result = ws.run("build", "//v:final")
    assert result.exit_code == 2
    assert "'srcs' file 'v/notes.txt' is neither an image (.png .jpg .jpeg)" in result.stderr
    assert result.stderr.startswith("v/BUILD.toml:")


def test_build_rejects_an_odd_width(mb_workspace) -> None:
    ws = mb_workspace({"v/a.png": b"", "v/BUILD.toml":
                       '[final]\nrule = "ffmpeg_concat"\nsrcs = ["a.png"]\nwidth = 101\n'})
    result = ws.run("build", "//v:final")
    assert result.exit_code == 2
    assert "'width' must be an even number of pixels from 2 to 8192" in result.stderr


def test_provider_binary_runs_the_ffmpeg_on_path(mb_workspace, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    wrapper = bin_dir / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\necho called >> "{calls}"\nexec "{FFMPEG}" "$@"\n')
    wrapper.chmod(0o755)
    ws = mb_workspace({
        "MB.toml": '[providers.ffmpeg]\nbinary = "ffmpeg"\n',
        "v/BUILD.toml": '[final]\nrule = "ffmpeg_concat"\nsrcs = ["a.png"]\n'
                        f'width = {W}\nheight = {H}\nfps = {FPS}\nimage_duration = 0.5\n',
    })
    make_png(ws.path / "v/a.png", "red")
    ws.env["PATH"] = f"{bin_dir}:{ws.env['PATH']}"
    result = ws.run("build", "//v:final")
    assert result.exit_code == 0, result.stderr
    assert calls.read_text().count("called") >= 1
    assert len(frames_rgb(ws.out("v/final.mp4"))) == 5


def test_an_input_named_like_an_option_is_passed_as_a_path():
    """A file named `-` (a valid name) was `-i -`, which ffmpeg reads as stdin."""
    import attrs

    from mb.rules._ffmpeg_plan import Plan, Segment, input_args

    fields = {f.name for f in attrs.fields(Plan)}
    extra = {name: "" for name in fields - {"segments", "audio", "width", "height", "fps"}}
    plan = Plan(segments=(Segment("p/-x.png", "image", 24), Segment("p/a.png", "image", 24)),
                audio=("-",), width=64, height=64, fps=24, **extra)
    args = input_args(plan)
    assert args[args.index("-i") + 1] == "p/-x.png"
    assert args[-2:] == ["-i", "./-"]
