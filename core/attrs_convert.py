"""The strict cattrs converter, and turning its errors into `(key path, message)` pairs.

cattrs' default converter coerces silently (`"false"` becomes True, `3`
becomes `"3"`); a build file with a wrong type must be an error instead, so
every primitive here has a hook that checks the type and nothing more.
`mb.File`, `mb.Files` and `mb.Label` are parsed relative to the package being
read, which is passed through a context variable because cattrs hooks take
no extra arguments.
"""

from __future__ import annotations

import contextvars
import types
import typing
from collections.abc import Iterable, Iterator
from typing import Any, Final, Union

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from mb.attributes import File, Files
from mb.errors import LabelError
from mb.labels import Label, parse_label
from mb.toml_text import describe, toml_repr

KeyPath = tuple[str | int, ...]

_package: contextvars.ContextVar[str] = contextvars.ContextVar("mb_package", default="")


class InvalidValue(ValueError):
    """A value of the wrong type or form; `text` completes "'attr' ..."."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class AttributeInvalid(InvalidValue):
    """Raised by an attrs validator; carries the attribute name (cattrs adds no note for it)."""

    def __init__(self, attribute: str, text: str) -> None:
        super().__init__(text)
        self.attribute = attribute


def _expect(kind: type | tuple[type, ...], word: str) -> Any:
    def hook(value: Any, _type: object) -> Any:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise InvalidValue(f"must be {word}, got {describe(value)}")
        if not isinstance(value, kind):
            raise InvalidValue(f"must be {word}, got {describe(value)}")
        checked: Any = value  # isinstance against a runtime type narrows to object
        return float(checked) if word == "a number" else checked

    return hook


def _label(value: Any) -> Label:
    if not isinstance(value, str):
        raise InvalidValue(f"must be a label, got {describe(value)}")
    try:
        return parse_label(value, _package.get())
    except LabelError as exc:
        raise InvalidValue(f"is not a valid label: {exc.message}") from None


def _file(value: Any, _type: Any, single: bool = True) -> File:
    if not isinstance(value, str):
        raise InvalidValue(f"must be a file path or label, got {describe(value)}")
    return File(_label(value), single=single)


def _files(value: Any, _type: Any) -> Files:
    if not isinstance(value, list):
        raise InvalidValue(f"must be a list of files, got {describe(value)}")
    errors: list[Exception] = []
    items: list[File] = []
    for index, item in enumerate(value):
        try:
            items.append(_file(item, File, single=False))
        except InvalidValue as exc:
            exc.__notes__ = [cattrs.IterableValidationNote(f"@ index {index}", index, File)]
            errors.append(exc)
    if errors:
        raise IterableValidationError("invalid files", errors, Files)
    return Files(tuple(items))


def _primitive_hooks(converter: cattrs.Converter) -> cattrs.Converter:
    converter.register_structure_hook(str, _expect(str, "a string"))
    converter.register_structure_hook(int, _expect(int, "an integer"))
    converter.register_structure_hook(float, _expect((int, float), "a number"))
    converter.register_structure_hook(bool, _expect(bool, "true or false"))
    converter.register_structure_hook(File, _file)
    converter.register_structure_hook(Files, _files)
    converter.register_structure_hook(Label, lambda v, _t: _label(v))
    converter.register_structure_hook_factory(_is_primitive_union, _primitive_union_hook)
    converter.register_structure_hook_factory(_is_file_or_files, lambda _t: _file_or_files)
    return converter


def _is_file_or_files(type_: Any) -> bool:
    """`mb.File | mb.Files`: one file as a string, or several as a list (e.g. `audio`)."""
    args = set(typing.get_args(type_))
    return (typing.get_origin(type_) in (Union, types.UnionType)
            and {File, Files} <= args <= {File, Files, type(None)})


def _file_or_files(value: Any, _type: Any) -> File | Files:
    if isinstance(value, list):
        return _files(value, Files)
    if isinstance(value, str):  # one label, which may stand for several files
        return _file(value, File, single=False)
    raise InvalidValue(f"must be a file or a list of files, got {describe(value)}")


_WORDS: Final = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                 type(None): "absent"}


def _is_primitive_union(type_: Any) -> bool:
    args = typing.get_args(type_)
    return (typing.get_origin(type_) in (Union, types.UnionType) and bool(args)
            and all(arg in _WORDS for arg in args))


def _primitive_union_hook(type_: Any) -> Any:
    """`int | str` and friends: the value must already be one of them (bool is not int)."""
    members = [arg for arg in typing.get_args(type_)]
    words = " or ".join(_WORDS[m] for m in members if m is not type(None))

    def hook(value: Any, _t: Any) -> Any:
        for member in members:
            if member is type(None) and value is None:
                return None
            if member is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)
            if member is not type(None) and type(value) is member:
                return value
        raise InvalidValue(f"must be {words}, got {describe(value)}")

    return hook


def _is_collection(type_: Any) -> bool:
    origin = typing.get_origin(type_) or type_
    return type_ not in (str, bytes) and (
        cattrs.converters.is_sequence(type_) or cattrs.converters.is_mapping(type_)
        or origin in (tuple, set, frozenset)
    )


def make_converter() -> cattrs.Converter:
    """The strict converter: also refuses a string where a list or table is expected.

    cattrs would iterate a string into a list of characters, so lists, tuples
    and tables are structured here: the container type is checked, then each
    item goes back through this converter (so nesting stays strict), with
    cattrs' own error notes so paths like `'srcs' item 2` still come out.
    """
    converter = _primitive_hooks(cattrs.Converter(forbid_extra_keys=True, detailed_validation=True))

    def collection_factory(type_: Any) -> Any:
        args = typing.get_args(type_)
        if cattrs.converters.is_mapping(type_):
            value_type = args[1] if len(args) == 2 else Any
            return lambda value, _t: _structure_table(converter, value, value_type, type_)
        origin = typing.get_origin(type_) or type_
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[int, str]: fixed
            return lambda value, _t: _structure_fixed(converter, value, args, type_)
        item_type = args[0] if args else Any
        make: Any = {tuple: tuple, set: set, frozenset: frozenset}.get(origin, list)
        return lambda value, _t: make(_structure_items(converter, value, item_type, type_))

    converter.register_structure_hook_factory(_is_collection, collection_factory)
    converter.register_structure_hook_factory(
        lambda t: typing.get_origin(t) is typing.Literal, _literal_hook)
    converter.register_structure_hook_factory(
        lambda t: isinstance(t, type) and attrs.has(t), _table_class_hook(converter))
    return converter


def _structure_each(converter: cattrs.Converter,
                    entries: Iterable[tuple[Any, Any, Any]], type_: Any) -> list[Any]:
    """Structure `(cattrs note, value, type)` entries, collecting every failure.

    Each failure carries its note (list index or table key), so `errors_of`
    can say `'srcs' item 2` or `'vars.title'`.
    """
    results: list[Any] = []
    errors: list[Exception] = []
    for note, item, item_type in entries:
        try:
            results.append(item if item_type is Any else converter.structure(item, item_type))
        except Exception as exc:
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]
            errors.append(exc)
    if errors:
        raise IterableValidationError("invalid items", errors, type_)
    return results


def _index_note(index: int, item_type: Any) -> cattrs.IterableValidationNote:
    return cattrs.IterableValidationNote(f"@ index {index}", index, item_type)


def _structure_items(converter: cattrs.Converter, value: Any, item_type: Any,
                     type_: Any) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidValue(f"must be a list, got {describe(value)}")
    return _structure_each(
        converter, ((_index_note(i, item_type), v, item_type) for i, v in enumerate(value)),
        type_)


def _structure_fixed(converter: cattrs.Converter, value: Any, item_types: tuple[Any, ...],
                     type_: Any) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise InvalidValue(f"must be a list, got {describe(value)}")
    if len(value) != len(item_types):
        raise InvalidValue(f"must be a list of {len(item_types)} items, got {len(value)}")
    return tuple(_structure_each(
        converter, ((_index_note(i, t), v, t) for i, (v, t) in enumerate(zip(value, item_types))),
        type_))


def _literal_hook(type_: Any) -> Any:
    """`Literal["dir", "linux"]`: one of the values, of the same type (no `1` for `True`)."""
    allowed = typing.get_args(type_)
    words = ", ".join(toml_repr(a) for a in allowed)

    def hook(value: Any, _t: Any) -> Any:
        if any(type(value) is type(a) and value == a for a in allowed):
            return value
        raise InvalidValue(f"must be one of {words}, got {describe(value)}")

    return hook


def _table_class_hook(converter: cattrs.Converter) -> Any:
    """An attrs class inside a file (`[build]` in MB.toml) must be given as a table."""

    def factory(cls: type) -> Any:
        from cattrs.gen import make_dict_structure_fn

        base: Any = make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True,
                                      _cattrs_detailed_validation=True)

        def hook(value: Any, _t: Any) -> Any:
            if not isinstance(value, dict):
                raise InvalidValue(f"must be a table, got {describe(value)}")
            return base(value, cls)

        return hook

    return factory


def _structure_table(converter: cattrs.Converter, value: Any, value_type: Any,
                     type_: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValue(f"must be a table, got {describe(value)}")
    notes = (cattrs.AttributeValidationNote(f"@ key {key}", key, value_type) for key in value)
    structured = _structure_each(
        converter, ((note, item, value_type) for note, item in zip(notes, value.values())),
        type_)
    return dict(zip(value, structured))


_converter: Final = make_converter()


def structure(raw: dict[str, Any], cls: type, package: str) -> Any:
    """Structure `raw` into `cls`; raises `ClassValidationError` (see `errors_of`)."""
    token = _package.set(package)
    try:
        return _converter.structure(raw, cls)
    finally:
        _package.reset(token)


def errors_of(exc: BaseException, cls: type, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Flatten a cattrs error tree into `(key path, message)` pairs, one per mistake."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, cattrs.AttributeValidationNote):
                    sub_path = path + (note.name,)
                elif isinstance(note, cattrs.IterableValidationNote):
                    sub_path = path + (note.index,)
            if isinstance(sub, KeyError) and sub_path != path:
                yield sub_path, "missing"
                continue
            yield from errors_of(sub, cls, sub_path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        allowed = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        for key in sorted(exc.extra_fields):
            yield path + (key,), "unknown:" + ",".join(allowed)
    elif isinstance(exc, AttributeInvalid):
        yield path + (exc.attribute,), exc.text
    elif isinstance(exc, InvalidValue):
        yield path, exc.text
    elif isinstance(exc, (ValueError, TypeError)):
        yield path, (f"is invalid: {exc}" if path else f"invalid: {exc}")
    else:
        yield path, f"is invalid: {exc!r}"


def describe_path(path: KeyPath) -> str:
    """`'srcs' item 2`, `'vars.title'` for a key path (items counted from 1)."""
    names = ".".join(str(p) for p in path if isinstance(p, str))
    text = f"'{names}'"
    for part in path:
        if isinstance(part, int):
            text += f" item {part + 1}"
    return text


def closest(word: str, candidates: list[str]) -> str | None:
    """The candidate nearest to a misspelt `word` (error path only: difflib is imported here)."""
    import difflib

    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None
