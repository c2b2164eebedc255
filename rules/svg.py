"""`svg_render`: an SVG template with `{{name}}` variables, rendered to a PNG by resvg.

Text needs fonts, and fonts differ between machines, so resvg never sees the
system's: it gets DejaVu Sans (shipped in `mb/rules/fonts/`, declared as
keyed tools) for every family, generic or named. Without that, resvg drops
text in a family it cannot find without a word, and a card comes out blank.
"""

from __future__ import annotations

import functools
import io as _io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

import mb

FONT_DIR: Final = Path(__file__).parent / "fonts"
FONT_FILES: Final = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
FONT_FAMILY: Final = "DejaVu Sans"
#: `{{ name }}`; names are letters, digits, `_`, `-` and `.`, starting with a letter or `_`.
VARIABLE: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_MAX_PIXELS: Final = 16384


@functools.cache
def renderer() -> str:
    """What renders the pixels; a new resvg may anti-alias differently, so it is keyed.

    resvg is imported here and where it renders, not with the module: the
    plugin is loaded by every full build, and most builds render no SVG.
    """
    import resvg_py

    return f"resvg {resvg_py.__resvg_version__} (resvg-py {resvg_py.__version__})"


def _size(name: str) -> Any:
    def check(_instance: object, _attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and not 1 <= value <= _MAX_PIXELS:
            raise ValueError(f"'{name}' must be from 1 to {_MAX_PIXELS} pixels, got {value!r}")
    return check


def _var_names(_instance: object, _attribute: attrs.Attribute[dict[str, str]],
               value: dict[str, str]) -> None:
    for key in value:
        if not _NAME.fullmatch(key):
            raise ValueError(
                f"'vars' key {key!r} cannot appear as {{{{{key}}}}}; use letters, digits, "
                "'_', '-' and '.', starting with a letter or '_'")


def background_rgba(colour: str) -> tuple[int, int, int, int]:
    """The RGBA resvg paints for a CSS colour; ValueError if resvg cannot parse it.

    Asking resvg itself (a 1x1 render, well under a millisecond) keeps the
    padding `render_png` adds the same colour as the canvas resvg fills.
    """
    import resvg_py

    png = resvg_py.svg_to_bytes(
        svg_string='<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>',
        background=colour, skip_system_fonts=True)
    from PIL import Image

    with Image.open(_io.BytesIO(png)) as image:
        pixel = image.convert("RGBA").getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return (pixel[0], pixel[1], pixel[2], pixel[3])


def _css_colour(_instance: object, _attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is None:
        return
    try:
        background_rgba(value)
    except ValueError:
        raise ValueError(
            f"'background' must be a CSS colour such as 'white', '#1b2a3c' or "
            f"'rgba(0, 0, 0, 0.5)', got {value!r}") from None


@attrs.frozen
class SvgAttrs:
    src: mb.File
    #: Output size; one of them scales the other to keep the aspect ratio,
    #: both fit the drawing inside and centre it. Default: the SVG's own size.
    width: int | None = attrs.field(default=None, validator=_size("width"))
    height: int | None = attrs.field(default=None, validator=_size("height"))
    #: `{{name}}` in the SVG text is replaced by the value, escaped for XML.
    vars: dict[str, str] = attrs.field(factory=dict, validator=_var_names)
    #: Canvas colour under the drawing; transparent by default.
    background: str | None = attrs.field(default=None, validator=_css_colour)


@mb.rule("svg_render", attrs=SvgAttrs, version="1")
def svg_render(ctx: mb.RuleContext, a: SvgAttrs) -> None:
    """Render `src` to `<name>.png` after substituting `vars`."""
    out = ctx.output(f"{ctx.name}.png")
    ctx.call(
        render_svg,
        inputs=[a.src],
        outputs=[out],
        tools=[ctx.tool(str(FONT_DIR / name)) for name in FONT_FILES],
        params={
            "src": ctx.path(a.src), "vars": dict(sorted(a.vars.items())),
            "width": a.width, "height": a.height, "background": a.background,
            "renderer": renderer(), "font_family": FONT_FAMILY,
        },
        timeout=300,
        description=f"svg -> {out.path}",
    )


def escape_xml(value: str) -> str:
    """Escape for both element text and quoted attribute values."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def substitute(text: str, values: Mapping[str, str], source: str) -> tuple[str, list[str]]:
    """Replace every `{{name}}`; returns the SVG and the names of unused values.

    Every placeholder without a value is reported at once, with its line, so
    a template edit that adds three variables needs one fix, not three builds.
    """
    missing: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return escape_xml(values[name])
        missing.setdefault(name, text.count("\n", 0, match.start()) + 1)
        return match.group(0)

    result = VARIABLE.sub(replace, text)
    if missing:
        where = ", ".join(f"{{{{{name}}}}} (line {line})" for name, line in missing.items())
        given = ", ".join(sorted(values)) or "none"
        raise mb.ActionError(
            f"{source}: no value for {where}; add {'them' if len(missing) > 1 else 'it'} to "
            f"'vars' (given: {given})", retryable=False)
    used = {m.group(1) for m in VARIABLE.finditer(text)}
    return result, sorted(set(values) - used)


def render_png(svg: str, fonts: list[str], width: int | None, height: int | None,
               background: str | None) -> bytes:
    """PNG bytes of `svg` at the requested size; ValueError if resvg rejects it.

    resvg fits the drawing inside width x height keeping its aspect ratio; when
    the box has another shape the result is centred on a canvas of exactly
    the requested size, as a browser shows an SVG with a viewBox.
    """
    import resvg_py

    family = FONT_FAMILY
    png = resvg_py.svg_to_bytes(
        svg_string=svg, width=width, height=height, background=background,
        skip_system_fonts=True, font_files=fonts, font_family=family, serif_family=family,
        sans_serif_family=family, cursive_family=family, fantasy_family=family,
        monospace_family=family,
    )
    if width is None or height is None:
        return png
    from PIL import Image

    with Image.open(_io.BytesIO(png)) as drawn:
        if drawn.size == (width, height):
            return png
        fill = background_rgba(background) if background else (0, 0, 0, 0)
        canvas = Image.new("RGBA", (width, height), fill)
        canvas.paste(drawn.convert("RGBA"), ((width - drawn.width) // 2, (height - drawn.height) // 2))
    buffer = _io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=6)  # no pnginfo: no text or time chunks
    return buffer.getvalue()


def render_svg(io: mb.ActionIO) -> None:
    """Substitute vars into the SVG, render it with the shipped fonts, write the PNG."""
    p = io.params
    source = str(p["src"])
    try:
        text = io.inputs[0].read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise mb.ActionError(f"{source}: not UTF-8 text ({exc.reason})", retryable=False) from None
    svg, unused = substitute(text, p["vars"], source)
    if unused:
        io.emit("svg.unused_vars", level="warning",
                message=f"{source}: vars not used by the template: {', '.join(unused)}")
    try:
        png = render_png(svg, [str(t) for t in io.tools], p["width"], p["height"], p["background"])
    except ValueError as exc:
        raise mb.ActionError(f"{source}: resvg cannot render it: {exc}", retryable=False) from None
    io.outputs[0].write_bytes(png)


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [svg_render]


@mb.hookimpl
def mb_placeholder(request: Any) -> bytes | None:
    """A missing SVG becomes a grey card naming it, so `mb watch` still shows a frame.

    mb's generic text placeholder is not SVG, so without this a template being
    written would fail its card instead of previewing it.
    """
    if not str(request.path).lower().endswith(".svg"):
        return None
    width, height = request.width, request.height
    if width is None:  # keep the 9:16 of a vertical short for the side not asked for
        width = round(height * 9 / 16) if height else 1080
    if height is None:
        height = round(width * 16 / 9)
    size = max(8, width // 20)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="{width}" height="{height}" fill="#404050"/>'
        f'<text x="{width // 2}" y="{height // 2}" font-family="sans-serif" font-size="{size}" '
        f'text-anchor="middle" fill="#ffffff">missing: {escape_xml(str(request.path))}</text>'
        "</svg>\n"
    ).encode()
