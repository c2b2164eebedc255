"""WAV files for the `tts` rule: write 16-bit PCM, and check and tidy WAV bytes from a server.

Kept apart from `tts.py` because both engines need it and because parsing
a RIFF file by hand is easier to test on its own. The stdlib `wave` module
writes a header that holds nothing but the sizes and the format, so the
same samples always give the same bytes.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path
from typing import Final

import attrs

#: WAVE_FORMAT_PCM and WAVE_FORMAT_EXTENSIBLE (whose sub-format may be PCM).
_FORMAT_PCM: Final = 1
_FORMAT_EXTENSIBLE: Final = 0xFFFE
#: What a streaming server writes into a size field it cannot know yet.
_UNKNOWN_SIZES: Final = (0, 0xFFFFFFFF)


class NotWav(ValueError):
    """The bytes are not a WAV file the rule can use; the message says what they are."""


@attrs.frozen
class WavInfo:
    """What a WAV file holds: its format and where its samples are."""

    format_tag: int
    channels: int
    sample_rate: int
    byte_rate: int
    block_align: int
    bits_per_sample: int
    data_offset: int
    data_size: int

    @property
    def duration_s(self) -> float:
        return self.data_size / self.byte_rate if self.byte_rate else 0.0


def write_pcm16(path: Path, samples: bytes, sample_rate: int, channels: int = 1) -> float:
    """Write 16-bit little-endian PCM samples as a WAV file; return its duration in seconds."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples)
    return len(samples) / (2 * channels * sample_rate)


def describe_bytes(data: bytes) -> str:
    """Name what a non-WAV body looks like, for an error message (`an MP3 file`, ...)."""
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "an MP3 file"
    if data[:4] == b"OggS":
        return "an Ogg (Opus/Vorbis) file"
    if data[:4] == b"fLaC":
        return "a FLAC file"
    if data[4:8] == b"ftyp":
        return "an MP4/AAC file"
    if data.lstrip()[:1] in (b"{", b"["):
        return "JSON"
    if data.lstrip()[:1] == b"<":
        return "HTML or XML"
    if not data:
        return "an empty body"
    return f"{len(data)} bytes starting with {data[:8]!r}"


def parse_wav(data: bytes) -> WavInfo:
    """Find the `fmt ` and `data` chunks of a RIFF/WAVE file.

    A server that streams its answer cannot know the sizes when it writes the
    header and puts 0 or 0xFFFFFFFF there (OpenAI does); the data then runs
    to the end of the body, which is what is assumed when a size is unknown
    or larger than what arrived.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise NotWav(f"expected a WAV file (RIFF/WAVE), got {describe_bytes(data)}")
    fmt: tuple[int, ...] | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset:offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise NotWav("the WAV file's 'fmt ' chunk is truncated")
            fmt = struct.unpack_from("<HHIIHH", data, body)
            if fmt[0] == _FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
                # The sub-format GUID starts with the real format tag.
                (sub,) = struct.unpack_from("<H", data, body + 24)
                fmt = (sub, *fmt[1:])
        elif chunk_id == b"data":
            if fmt is None:
                raise NotWav("the WAV file has a 'data' chunk before its 'fmt ' chunk")
            available = len(data) - body
            if size in _UNKNOWN_SIZES or size > available:
                size = available
            tag, channels, rate, byte_rate, align, bits = fmt
            if not channels or not rate or not byte_rate:
                raise NotWav(f"the WAV file's format is invalid ({channels} channels, {rate} Hz)")
            return WavInfo(tag, channels, rate, byte_rate, align, bits, body, size)
        offset = body + size + (size & 1)
    raise NotWav("the WAV file has no 'data' chunk" if fmt else "the WAV file has no 'fmt ' chunk")


def normalize(data: bytes) -> tuple[bytes, float]:
    """Check `data` is a WAV file and return (tidy bytes, duration in seconds).

    PCM files are rewritten with exact sizes and no extra chunks (a `LIST`
    chunk may name the encoder and its version, which is not the sound);
    other encodings (IEEE float, a-law) are kept as they came.
    """
    info = parse_wav(data)
    samples = data[info.data_offset:info.data_offset + info.data_size]
    if info.format_tag != _FORMAT_PCM or info.bits_per_sample not in (8, 16, 24, 32):
        return data, info.duration_s
    width = info.bits_per_sample // 8
    samples = samples[:len(samples) - len(samples) % (width * info.channels)]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(info.channels)
        out.setsampwidth(width)
        out.setframerate(info.sample_rate)
        out.writeframes(samples)
    return buffer.getvalue(), len(samples) / (width * info.channels * info.sample_rate)
