"""End-to-end: the `examples/` workspace, built with the real `mb` command.

One test builds the example exactly as shipped (1080x1920, full narration)
and checks the video against the cards and the voice-over it came from. The
others build a copy with small sizes, enough to check determinism and what a
one-card edit re-runs without encoding full HD three times.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
from PIL import Image

from mb.testing import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CARDS = ["shorts/title.png", "shorts/air.png", "shorts/feathers.png", "shorts/oil.png",
         "scenes/recap.png"]
OUTPUTS = [*CARDS, "shorts/narration.wav", "shorts/final.mp4"]


def copy_examples(mb_workspace, small: bool) -> Workspace:
    """A copy of examples/ in tmp_path; `small` shrinks cards and video for speed."""
    ws = mb_workspace({})
    shutil.copytree(EXAMPLES, ws.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("mb-out", ".mb"))
    if small:
        for build in ("shorts/BUILD.toml", "scenes/BUILD.toml"):
            path = ws.path / build
            text = path.read_text().replace('rule = "svg_render"', 'rule = "svg_render"\nwidth = 135')
            text = text.replace('rule = "ffmpeg_concat"',
                                'rule = "ffmpeg_concat"\nwidth = 72\nheight = 128')
            path.write_text(text.replace("fps = 24", "fps = 6"))
    return ws


def probe(path: Path) -> str:
    return subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True).stderr


def duration(info: str) -> float:
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info).groups()  # type: ignore[union-attr]
    return int(h) * 3600 + int(m) * 60 + float(s)


def frame_at(video: Path, seconds: float, size: tuple[int, int]) -> Image.Image:
    raw = subprocess.run([FFMPEG, "-v", "error", "-ss", f"{seconds:.3f}", "-i", str(video),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return Image.frombytes("RGB", size, raw)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    small_a = a.convert("RGB").resize((54, 96))
    small_b = b.convert("RGB").resize((54, 96))
    pairs = zip(small_a.get_flattened_data(), small_b.get_flattened_data(), strict=True)
    return sum(abs(x - y) for pa, pb in pairs for x, y in zip(pa, pb, strict=True)) / (54 * 96 * 3)


def test_the_shipped_example_builds_a_narrated_vertical_short(mb_workspace) -> None:
    ws = copy_examples(mb_workspace, small=False)
    result = ws.run("build", "//shorts:final")
    assert result.exit_code == 0, result.stderr
    assert "mb-out/shorts/final.mp4" in result.stdout

    with wave.open(str(ws.out("shorts/narration.wav"))) as w:
        speech = w.getnframes() / w.getframerate()
    assert 20 <= speech <= 40, "script.txt is a 20-40 s narration"
    video = ws.out("shorts/final.mp4")
    info = probe(video)
    assert re.search(r"Video: h264 .*yuv420p.*1080x1920", info)
    assert "24 fps" in info
    assert re.search(r"Audio: aac .*48000 Hz, stereo", info)
    assert abs(duration(info) - speech) <= 1 / 24 + 0.01, "the video lasts as long as the voice"

    # The cards appear in order, each for a fifth of the narration.
    for index, card in enumerate(CARDS):
        middle = (index + 0.5) * speech / len(CARDS)
        shown = frame_at(video, middle, (1080, 1920))
        expected = Image.open(ws.out(card))
        others = [Image.open(ws.out(c)) for c in CARDS if c != card]
        assert mean_difference(shown, expected) < 6, f"{card} is on screen at {middle:.1f} s"
        assert all(mean_difference(shown, other) > 3 * mean_difference(shown, expected)
                   for other in others)


def test_clean_rebuild_is_identical_and_a_card_edit_reruns_only_that_card(mb_workspace) -> None:
    ws = copy_examples(mb_workspace, small=True)
    assert ws.run("build", "//shorts:final").exit_code == 0
    first = {name: ws.out(name).read_bytes() for name in OUTPUTS}
    assert ws.run("clean", "--all").exit_code == 0
    assert not (ws.path / ".mb").exists() and not ws.out("shorts/final.mp4").exists()
    result = ws.run("build", "//shorts:final")
    assert result.exit_code == 0, result.stderr
    assert sorted(ws.executed()) == sorted(
        ["//shorts:narration", "//shorts:title", "//shorts:air", "//shorts:feathers",
         "//shorts:oil", "//scenes:recap", "//shorts:final"]), "everything really ran again"
    for name in OUTPUTS:
        assert ws.out(name).read_bytes() == first[name], f"{name} differs after a clean rebuild"

    build = ws.path / "shorts" / "BUILD.toml"
    text = build.read_text()
    assert 'line_1 = "A gland near the tail"' in text
    build.write_text(text.replace('line_1 = "A gland near the tail"',
                                  'line_1 = "A gland by the tail"'))
    result = ws.run("build", "//shorts:final")
    assert result.exit_code == 0, result.stderr
    assert sorted(ws.executed()) == ["//shorts:final", "//shorts:oil"], "never the narration"
    changed = {name for name in OUTPUTS if ws.out(name).read_bytes() != first[name]}
    assert changed == {"shorts/oil.png", "shorts/final.mp4"}


def test_cards_render_their_text(mb_workspace) -> None:
    """The same cards with their text vars blanked differ: the fonts reach the sandbox."""
    ws = copy_examples(mb_workspace, small=True)
    targets = {"//shorts:title": "shorts/title.png", "//scenes:recap": "scenes/recap.png"}
    assert ws.run("build", *targets).exit_code == 0
    with_text = {t: Image.open(ws.out(p)).convert("RGB") for t, p in targets.items()}
    for build in (ws.path / "shorts" / "BUILD.toml", ws.path / "scenes" / "BUILD.toml"):
        build.write_text(re.sub(r'(title_\d|subtitle|footer|heading|point_\d) = "[^"]*"',
                                r'\1 = ""', build.read_text()))
    assert ws.run("build", *targets).exit_code == 0
    for target, path in targets.items():
        without = Image.open(ws.out(path)).convert("RGB")
        assert with_text[target].size == without.size == (135, 240)
        assert mean_difference(with_text[target], without) > 1.0, f"{target} shows its text"
