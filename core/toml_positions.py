"""Map TOML key paths to (line, column): the only code that knows where things are in a file.

`tomllib` (and tomlkit) keep no positions for parsed values, yet every
mistake in a BUILD.toml must be reported as `file:line:col`. This small
scanner walks the text of an already-valid TOML document once and records
where each key, table header and array item starts:

    [clip]                 ("clip",)            -> (1, 1)
    srcs = ["a", 3]        ("clip", "srcs")     -> (2, 1)
                           ("clip", "srcs", 1)  -> (2, 14)

Only called on the error path, so it favours clarity over speed.
"""

from __future__ import annotations

from typing import Final

KeyPath = tuple[str | int, ...]
Position = tuple[int, int]

_BARE_KEY_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.positions: dict[KeyPath, Position] = {}
        self.array_table_counts: dict[KeyPath, int] = {}

    # --- low level -------------------------------------------------------------

    def here(self) -> Position:
        line = self.text.count("\n", 0, self.pos) + 1
        col = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        return line, col

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.pos += 1
            elif ch == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def record(self, path: KeyPath, position: Position) -> None:
        self.positions.setdefault(path, position)

    # --- grammar ---------------------------------------------------------------

    def document(self) -> dict[KeyPath, Position]:
        prefix: KeyPath = ()
        while True:
            self.skip_space(newlines=True)
            if self.pos >= len(self.text):
                return self.positions
            start = self.here()
            if self.peek(2) == "[[":
                self.pos += 2
                # `[[a.b]]` after `[[a]]` is an element of the last `a`'s `b` list.
                keys = self._within_array_tables(self.keys(until="]"))
                self.pos += 2
                index = self.array_table_counts.get(keys, 0)
                self.array_table_counts[keys] = index + 1
                prefix = keys + (index,)
                self.record(keys, start)
                self.record(prefix, start)
            elif self.peek() == "[":
                self.pos += 1
                prefix = self._within_array_tables(self.keys(until="]"))
                self.pos += 1
                self.record(prefix, start)
            else:
                self.key_value(prefix)

    def _within_array_tables(self, keys: KeyPath) -> KeyPath:
        """`[fruit.physical]` after `[[fruit]]` belongs to the last `fruit` element.

        Every key but the last that names an array of tables gets the index of
        its latest element.
        """
        path: KeyPath = ()
        for depth, key in enumerate(keys):
            path = path + (key,)
            count = self.array_table_counts.get(path)
            if count and depth < len(keys) - 1:
                path = path + (count - 1,)
        return path

    def keys(self, until: str) -> KeyPath:
        parts: list[str | int] = []
        while True:
            self.skip_space(newlines=False)
            parts.append(self.key())
            self.skip_space(newlines=False)
            if self.peek() == ".":
                self.pos += 1
                continue
            if self.peek() == until or until == "":
                return tuple(parts)
            raise ValueError(f"unexpected {self.peek()!r} at {self.here()}")

    def key(self) -> str:
        ch = self.peek()
        if ch in ('"', "'"):
            return self.string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def key_value(self, prefix: KeyPath) -> None:
        start = self.here()
        keys = self.keys(until="=")
        for depth in range(1, len(keys) + 1):
            self.record(prefix + keys[:depth], start)
        self.pos += 1  # '='
        self.skip_space(newlines=False)
        self.value(prefix + keys)

    def value(self, path: KeyPath) -> None:
        ch = self.peek()
        if ch in ('"', "'"):
            self.string()
        elif ch == "[":
            self.array(path)
        elif ch == "{":
            self.inline_table(path)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1

    def array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "]":
                self.pos += 1
                return
            self.record(path + (index,), self.here())
            self.value(path + (index,))
            index += 1
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.pos += 1

    def inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self.skip_space(newlines=True)
            if self.peek() == "}":
                self.pos += 1
                return
            self.key_value(path)
            self.skip_space(newlines=True)
            if self.peek() == ",":
                self.pos += 1

    def string(self) -> str:
        quote = self.peek()
        if self.peek(3) == quote * 3:
            end = self.pos + 3
            while True:
                if quote == '"' and self.text[end] == "\\":
                    end += 2  # an escaped character, possibly a quote
                    continue
                if self.text.startswith(quote * 3, end):
                    break
                end += 1
            while self.text[end + 3 : end + 4] == quote:  # `""""` closes after content quotes
                end += 1
            value = self.text[self.pos + 3 : end]
            self.pos = end + 3
            return value
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if quote == '"' and self.text[self.pos] == "\\":
                chars.append(self.text[self.pos : self.pos + 2])
                self.pos += 2
                continue
            chars.append(self.text[self.pos])
            self.pos += 1
        self.pos += 1
        raw = "".join(chars)
        if quote == '"' and "\\" in raw:
            import json

            try:
                return str(json.loads(f'"{raw}"'))
            except ValueError:
                return raw
        return raw


def key_positions(text: str) -> dict[KeyPath, Position]:
    """Positions of every key path in a valid TOML document."""
    scanner = _Scanner(text)
    try:
        return scanner.document()
    except (ValueError, IndexError):
        return scanner.positions


def position_of(positions: dict[KeyPath, Position], path: KeyPath) -> Position:
    """The position of `path`, else of its first recorded descendant (a table made only
    by `[t.sub]` headers), else of its closest recorded ancestor; (1, 1) if none."""
    found = positions.get(path)
    if found is not None:
        return found
    size = len(path)
    below = [pos for key, pos in positions.items()
             if size and len(key) > size and key[:size] == path]
    if below:
        return min(below)
    for depth in range(size - 1, 0, -1):
        found = positions.get(path[:depth])
        if found is not None:
            return found
    return (1, 1)
