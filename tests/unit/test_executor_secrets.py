"""How the executor hides the values of an action's `secret_env` (`secret_values`, `redact`)."""

from __future__ import annotations

import pytest

from mb.executor import secret_values
from mb.masking import REDACTED, redact


def test_each_value_and_each_long_part_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "sk-abcdefgh12345")
    monkeypatch.setenv("AUTH", "Bearer tok-87654321 x")
    secrets = secret_values(("API_KEY", "AUTH"))
    assert {"Bearer tok-87654321 x", "sk-abcdefgh12345", "tok-87654321"} <= set(secrets)
    assert secrets == sorted(secrets, key=len, reverse=True)
    text = "key sk-abcdefgh12345, header 'Bearer tok-87654321 x', alone tok-87654321"
    assert redact(text, secrets) == f"key {REDACTED}, header '{REDACTED}', alone {REDACTED}"


def test_short_parts_and_unset_or_empty_variables_are_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH", "Bearer abc")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET", raising=False)
    secrets = secret_values(["AUTH", "EMPTY", "UNSET"])
    assert set(secrets) == {"Bearer abc", "Bearer%20abc", "Bearer+abc"}
    assert redact("Bearer abc and Bearer alone", secrets) == f"{REDACTED} and Bearer alone"
    assert secret_values(()) == []
    assert redact("nothing to hide", []) == "nothing to hide"


def test_a_longer_secret_is_replaced_before_one_it_contains(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT", "secret-123")
    monkeypatch.setenv("LONG", "secret-123-and-more")
    secrets = secret_values(["SHORT", "LONG"])
    assert redact("secret-123-and-more / secret-123", secrets) == f"{REDACTED} / {REDACTED}"


def test_the_forms_a_program_writes_a_secret_in_are_hidden_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server echoing a query string shows the key URL-encoded; JSON escapes it. Both
    decode back at once, so they are the secret as much as the value is."""
    key = "SEKRIT+4242/z\u00e9bra==\""
    monkeypatch.setenv("KEY", key)
    secrets = secret_values(["KEY"])
    for shown in ("no route /x?key=SEKRIT%2B4242%2Fz%C3%A9bra%3D%3D%22",
                  "q=SEKRIT%2B4242%2Fz%C3%A9bra%3D%3D%22",
                  '{"key": "SEKRIT+4242/z\\u00e9bra==\\""}'):
        assert "SEKRIT" not in redact(shown, secrets), shown


def test_secret_texts_that_are_no_variable_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = secret_values([], ["PWSEKRIT-9999-lion"])
    assert redact("auth failed for PWSEKRIT-9999-lion", secrets) == f"auth failed for {REDACTED}"
