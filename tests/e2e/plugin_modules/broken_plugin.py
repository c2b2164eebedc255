"""A plugin whose import fails, as a plugin with a missing native library would."""

import mb  # noqa: F401

raise RuntimeError("no GPU driver here")
