"""`svg_render`: the action function on real SVGs, checked by pixels, then through `mb build`."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from PIL import Image

import mb
from mb.rules import svg

CARD = """<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100" viewBox="0 0 200 100">
  <rect width="200" height="100" fill="#ffffff"/>
  <text x="10" y="60" font-family="{family}" font-size="40" fill="#000000">{text}</text>
</svg>
"""
FONTS = [svg.FONT_DIR / name for name in svg.FONT_FILES]


def render(tmp_path: Path, text: str, **params: object) -> tuple[bytes, list[dict[str, object]]]:
    """Run the action on `text` as src.svg; returns the PNG bytes and the emitted events."""
    root = tmp_path / f"sandbox{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    (root / "src.svg").write_text(text)
    channel = io.StringIO()
    action = mb.ActionIO(
        root=root, inputs=[root / "src.svg"], outputs=[root / "out.png"], tools=list(FONTS),
        params={"src": "cards/src.svg", "vars": {}, "width": None, "height": None,
                "background": None, **params},
        providers={}, channel=channel,
    )
    svg.render_svg(action)
    events = [json.loads(line) for line in channel.getvalue().splitlines()]
    return (root / "out.png").read_bytes(), events


def image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGBA")


def dark_pixels(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    return sum(1 for p in img.crop(box).convert("L").get_flattened_data() if p < 100)


def png_chunks(png: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        chunks.append(png[pos + 4:pos + 8])
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("family", ["sans-serif", "serif", "monospace", "Helvetica, Arial"])
def test_text_renders_with_the_shipped_font_in_any_family(tmp_path: Path, family: str) -> None:
    with_text = image(render(tmp_path, CARD.format(family=family, text="Hello"))[0])
    without = image(render(tmp_path, CARD.format(family=family, text=""))[0])
    text_area = (10, 25, 120, 65)
    assert dark_pixels(without, (0, 0, 200, 100)) == 0
    assert dark_pixels(with_text, text_area) > 300, "the glyphs are drawn where the text is"
    assert dark_pixels(with_text, (0, 0, 200, 100)) == dark_pixels(with_text, text_area)
    assert with_text.getpixel((150, 50)) == (255, 255, 255, 255)


def test_bold_weight_uses_the_bold_face(tmp_path: Path) -> None:
    regular = CARD.format(family="sans-serif", text="Hello")
    bold = regular.replace("<text ", '<text font-weight="bold" ')
    box = (0, 0, 200, 100)
    assert dark_pixels(image(render(tmp_path, bold)[0]), box) > 1.3 * dark_pixels(
        image(render(tmp_path, regular)[0]), box)


def test_vars_are_substituted_and_escaped_for_xml(tmp_path: Path) -> None:
    template = CARD.format(family="sans-serif", text="{{ title }}").replace(
        'fill="#000000"', 'fill="{{ink}}"')
    png, _ = render(tmp_path, template, vars={"title": "Fish & <Chips>", "ink": "#ff0000"})
    expected, _ = render(tmp_path, CARD.format(family="sans-serif", text="Fish &amp; &lt;Chips&gt;")
                         .replace('fill="#000000"', 'fill="#ff0000"'))
    assert png == expected
    assert image(png).getpixel((150, 50)) == (255, 255, 255, 255)
    red = [p for p in image(png).get_flattened_data() if p[0] > 200 and p[1] < 60]
    assert len(red) > 300


def test_escape_covers_attribute_quotes() -> None:
    assert svg.escape_xml("""a"b'c<d>&""") == "a&quot;b&apos;c&lt;d&gt;&amp;"


def test_missing_vars_are_one_error_naming_each_with_its_line(tmp_path: Path) -> None:
    template = "<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'>\n" \
               "<text>{{title}}</text>\n<text>{{ subtitle }}{{title}}</text></svg>"
    with pytest.raises(mb.ActionError) as info:
        render(tmp_path, template, vars={"other": "x"})
    assert str(info.value) == (
        "cards/src.svg: no value for {{title}} (line 2), {{subtitle}} (line 3); "
        "add them to 'vars' (given: other)")
    assert info.value.retryable is False


def test_unused_var_is_a_warning_event(tmp_path: Path) -> None:
    _, events = render(tmp_path, CARD.format(family="sans-serif", text="{{a}}"),
                       vars={"a": "x", "titel": "typo"})
    warnings = [e for e in events if e.get("type") == "svg.unused_vars"]
    assert warnings[0]["level"] == "warning"
    assert "titel" in warnings[0]["data"]["message"]


def test_output_is_byte_identical_and_carries_no_metadata(tmp_path: Path) -> None:
    text = CARD.format(family="sans-serif", text="Same")
    first, _ = render(tmp_path, text, width=300)
    second, _ = render(tmp_path, text, width=300)
    assert first == second
    assert png_chunks(first) == [b"IHDR", b"IDAT", b"IEND"]
    padded, _ = render(tmp_path, text, width=300, height=300, background="navy")
    assert padded == render(tmp_path, text, width=300, height=300, background="navy")[0]
    assert png_chunks(padded) == [b"IHDR", b"IDAT", b"IEND"]


def test_one_side_scales_the_other_and_both_fit_and_centre(tmp_path: Path) -> None:
    drawing = "<svg xmlns='http://www.w3.org/2000/svg' width='20' height='10'>" \
              "<rect width='20' height='10' fill='#00ff00'/></svg>"
    assert image(render(tmp_path, drawing, width=40)[0]).size == (40, 20)
    assert image(render(tmp_path, drawing, height=40)[0]).size == (80, 40)
    boxed = image(render(tmp_path, drawing, width=40, height=60, background="#0000ff")[0])
    assert boxed.size == (40, 60)
    assert boxed.getpixel((20, 30)) == (0, 255, 0, 255), "the drawing is centred"
    assert boxed.getpixel((20, 2)) == (0, 0, 255, 255), "padding above takes the background"
    assert boxed.getpixel((20, 57)) == (0, 0, 255, 255)
    clear = image(render(tmp_path, drawing, width=40, height=60)[0])
    assert clear.getpixel((20, 2))[3] == 0, "without a background the padding is transparent"


def test_background_fills_the_canvas(tmp_path: Path) -> None:
    empty = "<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'/>"
    assert image(render(tmp_path, empty, background="rgba(255, 0, 0, 0.5)")[0]).getpixel(
        (4, 4)) == (255, 0, 0, 128)
    assert image(render(tmp_path, empty)[0]).getpixel((4, 4)) == (0, 0, 0, 0)


def test_malformed_svg_is_a_clean_action_error(tmp_path: Path) -> None:
    with pytest.raises(mb.ActionError, match=r"cards/src.svg: resvg cannot render it: .*entity"):
        render(tmp_path, "<svg xmlns='http://www.w3.org/2000/svg'><text>&</text></svg>")


def test_attribute_validators_reject_bad_values() -> None:
    file = mb.File(mb.Label("cards", "card.svg"))
    with pytest.raises(ValueError, match="'background' must be a CSS colour"):
        svg.SvgAttrs(src=file, background="blu")
    with pytest.raises(ValueError, match="'width' must be from 1 to 16384 pixels, got 0"):
        svg.SvgAttrs(src=file, width=0)
    with pytest.raises(ValueError, match="'vars' key 'my title'"):
        svg.SvgAttrs(src=file, vars={"my title": "x"})


# --- through the mb command ------------------------------------------------------------

TEMPLATE = """<svg xmlns="http://www.w3.org/2000/svg" width="90" height="160" viewBox="0 0 90 160">
  <rect width="90" height="160" fill="{{bg}}"/>
  <text x="45" y="90" font-family="sans-serif" font-size="40" text-anchor="middle"
        fill="#ffffff">{{word}}</text>
</svg>
"""


def test_build_renders_vars_into_a_png(mb_workspace) -> None:
    ws = mb_workspace({
        "cards/card.svg": TEMPLATE,
        "cards/BUILD.toml": '[a]\nrule = "svg_render"\nsrc = "card.svg"\n'
                            'vars = { bg = "#000000", word = "A&B" }\nwidth = 45\n',
    })
    result = ws.run("build", "//cards:a")
    assert result.exit_code == 0, result.stderr
    out = image(ws.out("cards/a.png").read_bytes())
    assert out.size == (45, 80)
    assert out.getpixel((2, 2)) == (0, 0, 0, 255)
    assert sum(1 for p in out.get_flattened_data() if p[0] > 200) > 50, "white text is drawn"


def test_build_reports_a_missing_var_and_fails(mb_workspace) -> None:
    ws = mb_workspace({
        "cards/card.svg": TEMPLATE,
        "cards/BUILD.toml": '[a]\nrule = "svg_render"\nsrc = "card.svg"\nvars = { bg = "red" }\n',
    })
    result = ws.run("build", "//cards:a")
    assert result.exit_code == 1
    assert "cards/card.svg: no value for {{word}} (line 4)" in result.stdout + result.stderr
    assert not ws.out("cards/a.png").exists()


def test_bad_background_is_an_analysis_error_in_the_build_file(mb_workspace) -> None:
    ws = mb_workspace({
        "cards/card.svg": TEMPLATE,
        "cards/BUILD.toml": '[a]\nrule = "svg_render"\nsrc = "card.svg"\nbackground = "blu"\n',
    })
    result = ws.run("build", "//cards:a")
    assert result.exit_code == 2
    assert result.stderr.startswith("cards/BUILD.toml:")
    assert "'background' must be a CSS colour such as 'white'" in result.stderr
    assert "Traceback" not in result.stderr


def test_placeholder_for_a_missing_svg_renders_a_card_naming_it(tmp_path: Path) -> None:
    from mb.placeholders import PlaceholderRequest

    request = PlaceholderRequest(path="scenes/<recap>.svg", consumer="//scenes:recap",
                                 reason="source file is missing", width=90)
    text = svg.mb_placeholder(request).decode()
    assert "missing: scenes/&lt;recap&gt;.svg" in text
    png = image(render(tmp_path, text, width=90)[0])
    assert png.size == (90, 160)
    assert sum(1 for p in png.get_flattened_data() if p[0] > 200) > 20, "the label is written"
    other = PlaceholderRequest(path="a.png", consumer="//a:b", reason="missing")
    assert svg.mb_placeholder(other) is None
