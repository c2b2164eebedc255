"""`mb build --placeholders`: missing sources and failed upstreams become placeholders."""

from __future__ import annotations

import array
import json
import struct

BUILD = """
[broken]
rule = "genrule"
outs = ["broken.wav"]
cmd = "exit 1"

[pack]
rule = "genrule"
srcs = ["cover.png", ":broken", "notes.txt"]
outs = ["cover_copy.png", "voice.wav", "notes_copy.txt"]
cmd = "cp v/cover.png v/cover_copy.png; cp v/broken.wav v/voice.wav; cp v/notes.txt v/notes_copy.txt"
"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_placeholders_fill_missing_inputs_and_are_provisional(mb_workspace):
    ws = mb_workspace({"v/BUILD.toml": BUILD})
    plain = ws.run("build", "//v:pack")
    assert plain.exit_code == 1
    assert "//v:pack (failed)" in plain.stdout, "without placeholders nothing is guessed"
    assert ("FAILED //v:pack: missing source file v/cover.png (needed by //v:pack); "
            "missing source file v/notes.txt (needed by //v:pack)") in plain.stderr

    result = ws.run("build", "--placeholders", "//v:pack")
    assert result.exit_code == 1, "//v:broken still failed"
    assert "//v:pack (built) [provisional]" in result.stdout
    assert png_size(ws.out("v/cover_copy.png").read_bytes()) == (1080, 1920)
    wav = ws.out("v/voice.wav").read_bytes()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert set(wav[44:]) == {0}, "silence"
    assert ws.out("v/notes_copy.txt").read_text() == (
        "placeholder: v/notes.txt is missing (source file is missing)\n")
    used = [e for e in ws.last_build_events() if e["type"] == "placeholder.used"]
    assert sorted(e["data"]["path"] for e in used) == ["v/broken.wav", "v/cover.png", "v/notes.txt"]
    finished = [e for e in ws.last_build_events()
                if e["type"] == "action.finished" and e["target"] == "//v:pack"]
    assert finished[0]["data"]["provisional"] is True
    build_id = (ws.path / ".mb/builds/current").read_text().strip()
    manifest = json.loads((ws.path / f".mb/builds/{build_id}.json").read_text())
    assert manifest["targets"]["//v:pack"]["provisional"] is True
    assert "provisional" in ws.run("show").stdout

    # The real inputs arrive: the placeholder result is not reused, nothing is provisional.
    from PIL import Image

    Image.new("RGB", (4, 4), (255, 0, 0)).save(ws.path / "v/cover.png")
    (ws.path / "v/notes.txt").write_text("real notes\n")
    build = (ws.path / "v/BUILD.toml").read_text().replace(
        'cmd = "exit 1"', 'cmd = "head -c 44 /dev/zero > $@"')
    (ws.path / "v/BUILD.toml").write_text(build)
    again = ws.run("build", "--placeholders", "//v:pack")
    assert again.exit_code == 0, again.stderr
    assert "[provisional]" not in again.stdout
    assert png_size(ws.out("v/cover_copy.png").read_bytes()) == (4, 4)
    assert ws.out("v/notes_copy.txt").read_text() == "real notes\n"
    assert [e for e in ws.last_build_events() if e["type"] == "placeholder.used"] == []


def test_a_missing_mp3_is_real_silence_an_mp4_can_be_made_from(mb_workspace):
    """SPEC §7 'WAV/MP3: silence': ffmpeg_concat probes the audio's duration, so a
    text stand-in failed the build even with --placeholders."""
    from PIL import Image

    ws = mb_workspace({"p/BUILD.toml": '[v]\nrule = "ffmpeg_concat"\nsrcs = ["pic.png"]\n'
                                       'audio = "a.mp3"\nwidth = 64\nheight = 64\nfps = 10\n'})
    Image.new("RGB", (64, 64), (0, 128, 255)).save(ws.path / "p/pic.png")
    result = ws.run("build", "--placeholders", "//p:v")
    assert result.exit_code == 0, result.stderr
    assert "//p:v (built) [provisional]" in result.stdout
    assert ws.out("p/v.mp4").stat().st_size > 0


def test_encoded_audio_placeholders_are_decodable_silence():
    import subprocess

    import imageio_ffmpeg

    from mb.placeholders import ENCODED_AUDIO, PlaceholderRequest, builtin_placeholder

    for suffix in ENCODED_AUDIO:
        request = PlaceholderRequest(path=f"p/a{suffix}", consumer="//p:v", reason="missing")
        data = builtin_placeholder(request)
        assert data == builtin_placeholder(request), f"{suffix}: the same bytes every time"
        decoded = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", suffix.lstrip(".").replace(
                "m4a", "mov").replace("opus", "ogg"), "-i", "-", "-f", "s16le", "-ac", "1",
             "-ar", "8000", "-"], input=data, capture_output=True, check=True).stdout
        assert 1.9 < len(decoded) / 16000 < 2.2, f"{suffix}: about 2 s"
        samples = array.array("h", decoded)
        assert max(abs(v) for v in samples) <= 2, f"{suffix}: silence"


def test_no_cache_keeps_placeholders_out_of_the_cache(mb_workspace):
    """`--no-cache` never writes the cache (SPEC §2 `no-cache`): a placeholder lives in
    .mb/tmp/ while the build runs, and nothing of it stays."""
    ws = mb_workspace({"v/BUILD.toml": """
[copy]
rule = "genrule"
srcs = ["notes.txt"]
outs = ["notes_copy.txt"]
cmd = "cp $< $@"
"""})
    result = ws.run("build", "--no-cache", "--placeholders")
    assert result.exit_code == 0, result.stderr
    assert "//v:copy (built) [provisional]" in result.stdout
    assert ws.out("v/notes_copy.txt").read_text() == (
        "placeholder: v/notes.txt is missing (source file is missing)\n")
    cache = ws.path / ".mb/cache"
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []
    assert list((ws.path / ".mb/tmp/placeholders").iterdir()) == []
