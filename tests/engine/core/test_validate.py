"""The shared type rule of the hand-written validators: a bool is never a number."""

from __future__ import annotations

import pytest

from hanlin.engine.core.validate import describe_type, is_of_type


@pytest.mark.parametrize(
    ("value", "types", "ok"),
    [
        (3, int, True),
        (3, (int, float), True),
        (0.5, (int, float), True),
        (True, int, False),
        (False, (int, float), False),
        (True, bool, True),
        (True, (bool, int), True),
        ("3", int, False),
        (None, (int, float), False),
        ([1], list, True),
    ],
)
def test_is_of_type(value: object, types: type | tuple[type, ...], ok: bool) -> None:
    assert is_of_type(value, types) is ok


def test_describe_type_in_words() -> None:
    assert describe_type(int) == "a whole number"
    assert describe_type((int, float)) == "a whole number or a number"
    assert describe_type(dict) == "a table"


def test_the_validators_refuse_true_as_a_number(tmp_path) -> None:
    from hanlin.engine.core.settings import load_settings
    from hanlin.lsp_server.config import DEFAULTS, parse_config

    settings = tmp_path / "settings.toml"
    settings.write_text('[models."m"]\ntemperature = true\n', encoding="utf-8")
    assert "must be" in (load_settings(settings).problem or "")
    assert parse_config({"maxTokens": True}).max_tokens == DEFAULTS.max_tokens
