"""A plugin whose import fails with a message of several lines."""

raise RuntimeError("first line of the message\nsecond line\nthird line")
