"""`ffmpeg_concat`: images and clips in order, plus narration, to one H.264/AAC MP4.

The ffmpeg binary is a keyed tool: by default the one imageio-ffmpeg ships
(so a fresh `pip install` can build videos), or the one named by
`[providers.ffmpeg] binary` in MB.toml. Its digest is part of the action key,
so upgrading ffmpeg re-encodes, and nothing else about the host leaks into
the output: the command pins threads, encoder settings and metadata.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import attrs

import mb
from mb.context import Tool
from mb.rules._ffmpeg_plan import (
    AAC_BITRATE, AUDIO_RATE, CLIP_SUFFIXES, IMAGE_SUFFIXES, X264, Plan, ffmpeg_argv, kind_of,
    plan_segments,
)

#: Lines of ffmpeg's stderr kept in the error of a failed encode: the first
#: ones usually name the cause, the last ones what gave up.
_STDERR_HEAD = 5
_STDERR_TAIL = 15
_POINTER = re.compile(r" @ 0x[0-9a-f]+")


def _even_pixels(name: str) -> Any:
    def check(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
        if not 2 <= value <= 8192 or value % 2:
            raise ValueError(
                f"'{name}' must be an even number of pixels from 2 to 8192 "
                f"(H.264 in yuv420p needs even sizes), got {value!r}")
    return check


def _fps_range(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= 120:
        raise ValueError(f"'fps' must be from 1 to 120 frames per second, got {value!r}")


def _positive_seconds(_instance: object, _attribute: attrs.Attribute[float | None],
                      value: float | None) -> None:
    if value is not None and not 0 < value <= 3600:
        raise ValueError(f"'image_duration' must be a number of seconds above 0, got {value!r}")


@attrs.frozen
class ConcatAttrs:
    #: Images (.png .jpg .jpeg) become stills, clips (.mp4 .mov .webm .mkv) play; in order.
    srcs: mb.Files
    #: One WAV (`":narration"`) or a list played one after the other under the video.
    audio: mb.File | mb.Files = mb.Files()
    width: int = attrs.field(default=1080, validator=_even_pixels("width"))
    height: int = attrs.field(default=1920, validator=_even_pixels("height"))
    fps: int = attrs.field(default=30, validator=_fps_range)
    #: Seconds per image; by default the images share the audio left after the clips.
    image_duration: float | None = attrs.field(default=None, validator=_positive_seconds)


def _ffmpeg_tool(ctx: mb.RuleContext) -> Tool:
    """The keyed ffmpeg: `[providers.ffmpeg] binary` if set, else imageio-ffmpeg's."""
    binary = ctx.provider("ffmpeg").get("binary")
    if binary is not None:
        if not isinstance(binary, str) or not binary:
            raise mb.RuleError(
                f"[providers.ffmpeg] binary in MB.toml must be a command name or path, got {binary!r}")
        return ctx.tool(binary)
    import imageio_ffmpeg

    try:
        return ctx.tool(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:  # no binary for this platform in the wheel
        raise mb.RuleError(
            f"no ffmpeg binary: {exc}; install one and set [providers.ffmpeg] binary = \"ffmpeg\" "
            "in MB.toml") from None


@mb.rule("ffmpeg_concat", attrs=ConcatAttrs, version="1")
def ffmpeg_concat(ctx: mb.RuleContext, a: ConcatAttrs) -> None:
    """Concatenate images and clips at width x height and fps, with `audio` under them."""
    srcs = ctx.paths(a.srcs)
    if not srcs:
        raise mb.RuleError("'srcs' must list at least one image or clip")
    for path in srcs:
        if kind_of(path) is None:
            raise mb.RuleError(
                f"'srcs' file {path!r} is neither an image ({' '.join(IMAGE_SUFFIXES)}) "
                f"nor a clip ({' '.join(CLIP_SUFFIXES)})")
    audio = ctx.paths(a.audio)
    out = ctx.output(f"{ctx.name}.mp4")
    ctx.call(
        concat_media,
        inputs=[*srcs, *audio],
        outputs=[out],
        tools=[_ffmpeg_tool(ctx)],
        # Paths go in the params too: inputs are de-duplicated, srcs may repeat a card.
        params={
            "srcs": srcs, "audio": audio, "width": a.width, "height": a.height, "fps": a.fps,
            "image_duration": a.image_duration,
            "encoder": {**X264, "aac_bitrate": AAC_BITRATE, "audio_rate": AUDIO_RATE},
        },
        timeout=1800,
        description=f"ffmpeg -> {out.path}",
    )


def _probe(path: Path, ffmpeg: Path) -> float:
    from mb.rules._media_probe import ProbeError, media_duration  # only where actions run

    try:
        return media_duration(path, ffmpeg)
    except ProbeError as exc:
        raise mb.ActionError(str(exc), retryable=False) from None


def make_plan(io: mb.ActionIO) -> Plan:
    """Measure clips and audio in the sandbox and lay out every frame."""
    ffmpeg = io.tools[0]
    p = io.params
    srcs: list[str] = list(p["srcs"])
    clip_seconds = [_probe(io.root / s, ffmpeg) for s in srcs if kind_of(s) == "clip"]
    audio: list[str] = list(p["audio"])
    audio_seconds = sum(_probe(io.root / s, ffmpeg) for s in audio) if audio else None
    segments, note = plan_segments(srcs, clip_seconds, audio_seconds, p["fps"], p["image_duration"])
    return Plan(tuple(segments), tuple(audio), p["width"], p["height"], p["fps"], note)


def stderr_excerpt(stderr: str) -> str:
    """ffmpeg's complaint, shortened: its first and last lines, without object addresses."""
    lines = [_POINTER.sub("", line) for line in stderr.strip().splitlines()]
    if len(lines) > _STDERR_HEAD + _STDERR_TAIL:
        lines = [*lines[:_STDERR_HEAD], "...", *lines[-_STDERR_TAIL:]]
    return "\n".join(lines) or "(no output)"


def concat_media(io: mb.ActionIO) -> None:
    """Run ffmpeg once over every input; fail with the tail of its stderr.

    A non-zero exit on the same inputs would fail again, so it is not
    retryable; being killed by a signal (out of memory, say) may pass next time.
    """
    plan = make_plan(io)
    if plan.note.startswith("the clips"):
        io.emit("ffmpeg.timing", level="warning", message=plan.note)
    argv = ffmpeg_argv(str(io.tools[0]), plan, str(io.outputs[0]))
    proc = subprocess.run(argv, cwd=io.root, capture_output=True, text=True, errors="replace",
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise mb.ActionError(
            f"ffmpeg exited with status {proc.returncode}:\n{stderr_excerpt(proc.stderr)}",
            retryable=proc.returncode < 0)
    io.set_metadata("duration_s", round(plan.duration, 6))
    io.set_metadata("frames", plan.frames)
    io.set_metadata("timing", plan.note)


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [ffmpeg_concat]
