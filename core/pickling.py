"""Compact pickles for the frozen attrs classes of an action (the incremental table).

attrs gives a slotted class a `__getstate__` that builds, in Python, a dict
of field names to values for every object pickled. The action table of a
clean wide1k build (`incremental.write_table`, 1,000 actions, each pickled
on its own so one can be loaded alone) took 25 ms to pickle and 650 kB, at
the end of the build on one core, and 28 ms to unpickle. Reducing an object
to its class and its field values in order (the positional parameters of
`__init__`) takes 7.5 ms, half the bytes, and 8 ms to load; loading calls
`__init__`, so a table entry goes through the same converters and validators
as an object made by analysis.
"""

from __future__ import annotations

import operator
from typing import Any, TypeVar

import attrs

_Class = TypeVar("_Class", bound=type)


def pickled_by_position(cls: _Class) -> _Class:
    """Make `cls` (an attrs class whose fields are all positional `__init__`
    parameters) pickle as `cls(*field_values)`."""
    fields = attrs.fields(cls)
    if not fields or any(not f.init or f.kw_only for f in fields):
        raise TypeError(f"{cls.__name__}: every field must be a positional __init__ parameter")
    names = [f.name for f in fields]
    values = operator.attrgetter(*names)
    single = len(names) == 1

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        found = values(self)
        return cls, (found,) if single else found

    cls.__reduce__ = __reduce__  # type: ignore[assignment]
    return cls
