"""The helper whose edits must re-run `styled` actions: its source is part of their key."""


def transform(text: str) -> str:
    return text.title()
