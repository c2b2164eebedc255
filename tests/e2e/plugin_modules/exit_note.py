"""A plugin module without hooks that registers an `atexit` function: the function
must still run although `mb` normally exits without tearing the interpreter down."""

from __future__ import annotations

import atexit
import os


def _note() -> None:
    with open(os.environ["EXIT_NOTE"], "w", encoding="utf-8") as f:
        f.write("ran\n")


atexit.register(_note)
