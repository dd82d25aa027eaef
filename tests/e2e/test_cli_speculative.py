"""`hanlin chat` with speculative decoding, as a real subprocess on the real SmolLM2.

The same answer with and without drafts (`--no-speculative`), the acceptance rate in the
statistics line, a draft model from `--draft-model` or the settings, and what happens
when that model cannot be used: an error for the flag, a warning for the setting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli_chat import assert_one_line_error, hanlin

pytestmark = pytest.mark.slow

EDIT = (
    "Rename `message` to `greeting` in this function:\n\n```python\n"
    'def greet(name):\n    message = "Hello, " + name + "!"\n'
    "    print(message)\n    return message\n```"
)
FAST = ["--max-tokens", "40", "--ctx", "1024", "--temperature", "0"]


@pytest.fixture(autouse=True)
def one_thread(hanlin_home: Path) -> None:
    config = hanlin_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.toml").write_text("threads = 1\n")


def test_drafts_change_nothing_but_the_statistics(smollm2_path: Path, hanlin_home: Path) -> None:
    fast = hanlin("chat", str(smollm2_path), EDIT, *FAST, home=hanlin_home)
    plain = hanlin("chat", str(smollm2_path), EDIT, *FAST, "--no-speculative", home=hanlin_home)
    assert fast.returncode == 0 and plain.returncode == 0, fast.stderr + plain.stderr
    assert fast.stdout == plain.stdout and "def greet" in fast.stdout
    assert "% accepted (" in fast.stderr  # e.g. "drafts 93% accepted (27/29)"
    assert "accepted" not in plain.stderr

    helped = hanlin(
        "chat",
        str(smollm2_path),
        EDIT,
        *FAST,
        "--draft-model",
        str(smollm2_path),
        home=hanlin_home,
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout == plain.stdout
    assert "loaded for speculative decoding" in helped.stderr


def test_a_draft_model_that_cannot_draft(smollm2_path: Path, hanlin_home: Path) -> None:
    flag = hanlin("chat", str(smollm2_path), EDIT, *FAST, "--draft-model", "nope", home=hanlin_home)
    assert_one_line_error(flag, "The draft model 'nope' is not available")

    settings = hanlin_home / "config" / "settings.toml"
    settings.write_text(
        f'threads = 1\n\n[models."{smollm2_path.stem.lower()}"]\ndraft_model = "nope"\n'
    )
    kept = hanlin("chat", str(smollm2_path), EDIT, *FAST, home=hanlin_home)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip()
    assert "warning: The draft model 'nope'" in kept.stderr
    assert "answering without a draft model" in kept.stderr
