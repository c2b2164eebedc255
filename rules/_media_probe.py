"""Media durations for `ffmpeg_concat`, read with the stdlib or the keyed ffmpeg binary.

The bundled imageio-ffmpeg build has no ffprobe, so durations of clips come
from the `Duration:` line `ffmpeg -i FILE` prints before it complains that no
output was given. WAV files are measured exactly with `wave` instead: the
`Duration:` line is rounded to centiseconds, and a rounding error in the
narration's length would show up as a cut-off last word.
"""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path
from typing import Final

_DURATION: Final = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


class ProbeError(Exception):
    """A file whose duration cannot be read; the message names the file and why."""


def wav_duration(path: Path) -> float | None:
    """Exact length of a PCM WAV in seconds, or None if `wave` cannot read it.

    `wave` reads only integer PCM; float or compressed WAVs fall back to ffmpeg.
    """
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def ffmpeg_duration(path: Path, ffmpeg: Path) -> float:
    """Length of any media file ffmpeg can open, from its `Duration:` line."""
    proc = subprocess.run(
        [str(ffmpeg), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True, text=True, errors="replace", check=False,
    )
    found = _DURATION.search(proc.stderr)
    if found is None:
        tail = " ".join(proc.stderr.strip().splitlines()[-2:])
        raise ProbeError(f"{path.name}: ffmpeg reports no duration ({tail or 'no output'})")
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def media_duration(path: Path, ffmpeg: Path) -> float:
    """Length of an audio or video file in seconds; exact for PCM WAVs."""
    if path.suffix.lower() == ".wav":
        exact = wav_duration(path)
        if exact is not None:
            return exact
    return ffmpeg_duration(path, ffmpeg)
