"""How the executor hides the values of an action's `secret_env` (`secret_values`, `redact`)."""

from __future__ import annotations

import pytest

from mb.executor import REDACTED, redact, secret_values


def test_each_value_and_each_long_part_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "sk-abcdefgh12345")
    monkeypatch.setenv("AUTH", "Bearer tok-87654321 x")
    secrets = secret_values(("API_KEY", "AUTH"))
    assert secrets == ["Bearer tok-87654321 x", "sk-abcdefgh12345", "tok-87654321"]
    text = "key sk-abcdefgh12345, header 'Bearer tok-87654321 x', alone tok-87654321"
    assert redact(text, secrets) == f"key {REDACTED}, header '{REDACTED}', alone {REDACTED}"


def test_short_parts_and_unset_or_empty_variables_are_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH", "Bearer abc")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET", raising=False)
    secrets = secret_values(["AUTH", "EMPTY", "UNSET"])
    assert secrets == ["Bearer abc"]
    assert redact("Bearer abc and Bearer alone", secrets) == f"{REDACTED} and Bearer alone"
    assert secret_values(()) == []
    assert redact("nothing to hide", []) == "nothing to hide"


def test_a_longer_secret_is_replaced_before_one_it_contains(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT", "secret-123")
    monkeypatch.setenv("LONG", "secret-123-and-more")
    secrets = secret_values(["SHORT", "LONG"])
    assert redact("secret-123-and-more / secret-123", secrets) == f"{REDACTED} / {REDACTED}"
