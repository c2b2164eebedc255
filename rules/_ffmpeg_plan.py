"""The frame plan and the ffmpeg command line of `ffmpeg_concat`, as pure functions.

Timing is decided here in whole frames, not seconds, so the video length is
exact and the audio is padded or cut to the same sample: a 29.97 s narration
never leaves a stray frame or a clipped last syllable. Everything that could
make two runs differ (threads, encoder defaults, metadata, the x264 settings
SEI that embeds its own version string) is pinned in `encoder_args`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import attrs

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg")
CLIP_SUFFIXES: Final = (".mp4", ".mov", ".webm", ".mkv")
#: Seconds each image lasts when there is no audio to fill and no `image_duration`.
DEFAULT_IMAGE_SECONDS: Final = 2.0
AUDIO_RATE: Final = 48_000
#: x264 settings; part of the action key through the params.
X264: Final = {"preset": "veryfast", "crf": 23, "profile": "high", "threads": 2}
AAC_BITRATE: Final = "128k"
_SCALE_FLAGS: Final = "bicubic+accurate_rnd+full_chroma_int+bitexact"


def kind_of(path: str) -> str | None:
    """`image`, `clip`, or None for a file `ffmpeg_concat` does not take in `srcs`."""
    lowered = path.lower()
    if lowered.endswith(IMAGE_SUFFIXES):
        return "image"
    if lowered.endswith(CLIP_SUFFIXES):
        return "clip"
    return None


@attrs.frozen
class Segment:
    """One entry of `srcs`: its sandbox-relative path, kind and length in frames."""

    path: str
    kind: str
    frames: int


@attrs.frozen
class Plan:
    """The whole video: segments in order, and the audio files laid under them."""

    segments: tuple[Segment, ...]
    audio: tuple[str, ...]
    width: int
    height: int
    fps: int
    #: Why the image duration is what it is (for the action's metadata and warnings).
    note: str = ""

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments)

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def audio_samples(self) -> int:
        """Audio length matching the video to the sample (rounded for odd frame rates)."""
        return round(self.frames * AUDIO_RATE / self.fps)


def plan_segments(
    srcs: Sequence[str],
    clip_seconds: Sequence[float],
    audio_seconds: float | None,
    fps: int,
    image_seconds: float | None,
) -> tuple[list[Segment], str]:
    """Frames for every src: clips keep their length, images share what is left.

    `clip_seconds` holds one duration per clip in `srcs` order. Without an
    explicit `image_seconds`, the images split the audio left after the clips
    evenly (rounded up to a whole frame so no speech is cut); with no audio,
    or when the clips already outlast it, each image lasts 2 s and the returned
    note says so.
    """
    kinds = [kind_of(p) for p in srcs]
    clips = iter(clip_seconds)
    clip_frames = {i: max(1, round(next(clips) * fps)) for i, k in enumerate(kinds) if k == "clip"}
    images = [i for i, k in enumerate(kinds) if k == "image"]
    note = ""
    if image_seconds is not None:
        total_image_frames = round(len(images) * image_seconds * fps)
        note = f"image_duration {image_seconds:g} s"
    elif audio_seconds is not None and images:
        left = audio_seconds - sum(clip_frames.values()) / fps
        if left > 0:
            total_image_frames = math.ceil(left * fps - 1e-6)
            note = f"{left:.3f} s of audio shared by {len(images)} images"
        else:
            total_image_frames = round(len(images) * DEFAULT_IMAGE_SECONDS * fps)
            note = (f"the clips last longer than the audio ({audio_seconds:.2f} s): "
                    f"images last {DEFAULT_IMAGE_SECONDS:g} s each")
    else:
        total_image_frames = round(len(images) * DEFAULT_IMAGE_SECONDS * fps)
        note = f"{DEFAULT_IMAGE_SECONDS:g} s per image"
    total_image_frames = max(total_image_frames, len(images))
    segments: list[Segment] = []
    for i, (path, kind) in enumerate(zip(srcs, kinds, strict=True)):
        if kind == "clip":
            segments.append(Segment(path, "clip", clip_frames[i]))
        else:
            k = images.index(i)
            # Even split in whole frames: boundaries at floor(k * total / n).
            frames = ((k + 1) * total_image_frames) // len(images) - (k * total_image_frames) // len(images)
            segments.append(Segment(path, "image", frames))
    return segments, note


def _fit(width: int, height: int) -> str:
    """Scale into width x height keeping the aspect ratio, convert, centre on black."""
    # Every output is BT.709, limited (tv) range, whatever its sources: a JPEG decodes
    # full-range BT.601 (yuvj420p), which format=yuv420p alone keeps, flagging the
    # whole video full-range; a PNG's RGB is converted with the same matrix.
    return (f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags={_SCALE_FLAGS}:"
            "out_color_matrix=bt709:out_range=tv,"
            f"format=yuv420p,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1")


def input_args(plan: Plan) -> list[str]:
    """`-i` options: an image is read once as one frame; clips and audio as they are."""
    args: list[str] = []
    for seg in plan.segments:
        if seg.kind == "image":
            args += ["-framerate", str(plan.fps), "-i", _input(seg.path)]
        else:
            args += ["-i", _input(seg.path)]
    for path in plan.audio:
        args += ["-i", _input(path)]
    return args


def _input(path: str) -> str:
    """`./-` for a file named `-`, which ffmpeg would read as stdin (and `./-x` for any
    name starting with `-`, for the same reason as in genrule commands)."""
    return "./" + path if path.startswith("-") else path


def filter_graph(plan: Plan) -> str:
    """The -filter_complex text producing `[vout]` and `[aout]`."""
    chains: list[str] = []
    labels: list[str] = []
    for i, seg in enumerate(plan.segments):
        if seg.kind == "image":
            # Scale the one decoded frame once, then repeat it: scaling 1080x1920
            # every frame (what `-loop 1` input does) costs ten times the encode.
            video = f"[{i}:v]{_fit(plan.width, plan.height)},loop=loop=-1:size=1"
        else:
            # Clips: restart their clock, resample to the output rate, hold the last
            # frame if the stream ends early, then cut at the planned frame count.
            video = (f"[{i}:v]setpts=PTS-STARTPTS,fps={plan.fps},{_fit(plan.width, plan.height)},"
                     "tpad=stop_mode=clone:stop=-1")
        chains.append(f"{video},trim=end_frame={seg.frames},"
                      f"setpts=round(N/({plan.fps}*TB))[v{i}]")
        labels.append(f"[v{i}]")
    chains.append(f"{''.join(labels)}concat=n={len(labels)}:v=1:a=0[vout]")
    samples = plan.audio_samples
    if plan.audio:
        first = len(plan.segments)
        parts: list[str] = []
        for j in range(len(plan.audio)):
            chains.append(f"[{first + j}:a]aresample={AUDIO_RATE},"
                          f"aformat=sample_fmts=fltp:channel_layouts=stereo[a{j}]")
            parts.append(f"[a{j}]")
        chains.append(f"{''.join(parts)}concat=n={len(parts)}:v=0:a=1,"
                      f"apad=whole_len={samples},atrim=end_sample={samples}[aout]")
    else:
        # A silent track, so every output has the same streams and players behave alike.
        chains.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=end_sample={samples}[aout]")
    return ";".join(chains)


def encoder_args(plan: Plan) -> list[str]:
    """H.264 + AAC in MP4 with every source of run-to-run variation pinned."""
    return [
        "-map", "[vout]", "-map", "[aout]",
        "-c:v", "libx264", "-preset", str(X264["preset"]), "-crf", str(X264["crf"]),
        "-profile:v", str(X264["profile"]), "-pix_fmt", "yuv420p",
        # What `_fit` converted to, written into the stream so players read it alike.
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv",
        "-g", str(plan.fps * 2), "-r", str(plan.fps),
        "-threads", str(X264["threads"]),
        # Drop the SEI unit in which x264 writes its version and settings string.
        "-bsf:v", "filter_units=remove_types=6",
        "-c:a", "aac", "-b:a", AAC_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-movflags", "+faststart", "-f", "mp4",
    ]


def ffmpeg_argv(ffmpeg: str, plan: Plan, output: str) -> list[str]:
    """The whole command line, ending with the output path."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-filter_complex_threads", "1",
        *input_args(plan),
        "-filter_complex", filter_graph(plan),
        *encoder_args(plan),
        output,
    ]
