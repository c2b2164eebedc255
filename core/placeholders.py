"""Placeholder artifacts for missing inputs (SPEC §7), so a preview is always watchable.

Plugins answer first through the `mb_placeholder` hook; mb's own generators
cover images (a solid card with the missing label written on it), audio
(silence), video (a black clip) and text. A placeholder is stored in the
cache like any blob (under `--no-cache`, in `.mb/tmp/` for the build's
length), and everything built from it is provisional.
"""

from __future__ import annotations

import io
import os
import wave
from collections.abc import Callable
from typing import Any

import attrs

from mb.events import EventLog

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp")
AUDIO_TYPES = (".wav",)
#: Compressed audio: silence encoded by the ffmpeg mb ships with (imageio-ffmpeg).
ENCODED_AUDIO: dict[str, tuple[str, ...]] = {
    ".mp3": ("-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"),
    ".m4a": ("-c:a", "aac", "-b:a", "64k", "-f", "ipod"),
    ".aac": ("-c:a", "aac", "-b:a", "64k", "-f", "adts"),
    ".ogg": ("-c:a", "libvorbis", "-q:a", "2", "-f", "ogg"),
    ".opus": ("-c:a", "libopus", "-b:a", "48k", "-f", "opus"),
    ".flac": ("-c:a", "flac", "-f", "flac"),
}
VIDEO_TYPES = (".mp4", ".mov", ".webm", ".mkv")


@attrs.frozen
class PlaceholderRequest:
    """What is missing and who needs it; `width`/`height`/`duration_s` when known."""

    path: str
    consumer: str
    reason: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


def placeholder_image(request: PlaceholderRequest) -> bytes:
    from PIL import Image, ImageDraw

    width, height = request.width or 1080, request.height or 1920
    image = Image.new("RGB", (width, height), (64, 64, 80))
    draw = ImageDraw.Draw(image)
    text = f"missing: {request.path}"
    size = max(12, width // 24)
    try:
        from PIL import ImageFont

        font: Any = ImageFont.load_default(size=size)
    except (TypeError, OSError):
        font = None
    draw.text((width // 20, height // 2), text, fill=(255, 255, 255), font=font)
    buffer = io.BytesIO()
    fmt = "JPEG" if request.path.lower().endswith((".jpg", ".jpeg")) else "PNG"
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def placeholder_audio(request: PlaceholderRequest) -> bytes:
    rate = 22050
    frames = int(rate * (request.duration_s or 2.0))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * frames)
    return buffer.getvalue()


def placeholder_encoded_audio(request: PlaceholderRequest) -> bytes:
    """Silence as MP3, AAC, Vorbis, Opus or FLAC: a consumer probing or decoding it
    (ffmpeg_concat reads its duration) must get real audio, not a text file."""
    import subprocess
    import tempfile

    import imageio_ffmpeg

    suffix = os.path.splitext(request.path)[1].lower()
    duration = request.duration_s or 2.0
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "silence" + suffix)
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
             f"anullsrc=r=48000:cl=mono:d={duration}", *ENCODED_AUDIO[suffix],
             "-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1", target],
            check=True, capture_output=True)
        with open(target, "rb") as f:
            return f.read()


def placeholder_video(request: PlaceholderRequest) -> bytes:
    import subprocess
    import tempfile

    import imageio_ffmpeg

    width, height = request.width or 1080, request.height or 1920
    duration = request.duration_s or 2.0
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "black.mp4")
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
             f"color=c=black:s={width}x{height}:d={duration}:r=30", "-c:v", "libx264",
             "-pix_fmt", "yuv420p", "-threads", "1", "-fflags", "+bitexact",
             "-map_metadata", "-1", target],
            check=True, capture_output=True)
        with open(target, "rb") as f:
            return f.read()


def builtin_placeholder(request: PlaceholderRequest) -> bytes:
    suffix = os.path.splitext(request.path)[1].lower()
    if suffix in IMAGE_TYPES:
        return placeholder_image(request)
    if suffix in AUDIO_TYPES:
        return placeholder_audio(request)
    if suffix in ENCODED_AUDIO:
        return placeholder_encoded_audio(request)
    if suffix in VIDEO_TYPES:
        return placeholder_video(request)
    return f"placeholder: {request.path} is missing ({request.reason})\n".encode()


class PlaceholderMaker:
    """Makes (once per path and size) and stores placeholders during one build.

    `store` keeps a placeholder's bytes where the actions that read it are
    staged from, and returns their digest (`Executor.store_placeholder`).
    """

    def __init__(self, plugins: Any, analysis: Any, events: EventLog,
                 store: Callable[[bytes], str]) -> None:
        self.plugins = plugins
        self.analysis = analysis
        self.events = events
        self.store = store
        self._made: dict[tuple[str, int | None, int | None], str] = {}

    def make(self, path: str, action: Any) -> str | None:
        params = action.spec.params if isinstance(action.spec.params, dict) else {}
        width = params.get("width") if isinstance(params.get("width"), int) else None
        height = params.get("height") if isinstance(params.get("height"), int) else None
        producer = self.analysis.producers.get(path)
        reason = f"{producer.owner} is not available" if producer else "source file is missing"
        request = PlaceholderRequest(path=path, consumer=str(action.owner), reason=reason,
                                     width=width, height=height)
        cache_key = (path, width, height)
        digest = self._made.get(cache_key)
        if digest is None:
            data = self.plugins.placeholder(request)
            if data is None:
                data = builtin_placeholder(request)
            digest = self.store(data)
            self._made[cache_key] = digest
        self.events.emit("placeholder.used", target=str(action.owner), level="warning",
                         path=path, reason=reason, digest=digest)
        return digest
