"""`hanlin chat --file PATH` and `/file` as real subprocesses on the real SmolLM2 model.

The file goes into the prompt: the prompt the model evaluated grows by exactly the token
count printed for the attachment. A folder is filtered by its .gitignore; binary and
missing files are one-line errors before any model loads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_cli_chat import FAST, assert_one_line_error, hanlin

CODE = "def frobnicate_quux(a, b):\n    return a * b + 7\n"
QUESTION = "Repeat the function exactly."


@pytest.fixture(autouse=True)
def one_thread(hanlin_home: Path) -> None:
    """`threads = 1`: the CI cores are shared."""
    config = hanlin_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.toml").write_text("threads = 1\n")


def prompt_tokens(stderr: str) -> list[int]:
    return [int(n) for n in re.findall(r"prompt (\d+) tokens", stderr)]


def attached(stderr: str) -> dict[str, int]:
    """`attached LABEL (LANG, SIZE, N tokens)` lines: label -> N."""
    found = re.findall(r"^attached (\S+) \((?:[^,]+, )?[^,]+, (\d+) tokens\)$", stderr, re.M)
    return {label: int(n) for label, n in found}


@pytest.mark.slow
def test_the_file_goes_into_the_prompt_with_its_token_count(
    smollm2_path: Path, hanlin_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "calc.py").write_text(CODE)
    plain = hanlin("chat", str(smollm2_path), QUESTION, *FAST, home=hanlin_home)
    assert plain.returncode == 0, plain.stderr
    with_file = hanlin(
        "chat",
        str(smollm2_path),
        QUESTION,
        "--file",
        str(tmp_path / "calc.py"),
        *FAST,
        home=hanlin_home,
    )
    assert with_file.returncode == 0, with_file.stderr
    assert "Traceback" not in with_file.stderr
    assert "attached " in with_file.stderr and "(python, 48 B, " in with_file.stderr
    (tokens,) = attached(with_file.stderr).values()
    assert tokens > 20  # counted by SmolLM2's tokenizer: no "about"
    (before,) = prompt_tokens(plain.stderr)
    (after,) = prompt_tokens(with_file.stderr)
    assert abs((after - before) - tokens) <= 2, (before, after, tokens)


@pytest.mark.slow
def test_a_folder_honours_gitignore_and_slash_file_attaches_to_the_next_message(
    smollm2_path: Path, hanlin_home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "proj"
    (folder / "src").mkdir(parents=True)
    (folder / ".gitignore").write_text("secrets.env\nbuild/\n")
    (folder / "src" / "calc.py").write_text(CODE)
    (folder / "notes.md").write_text("# Notes\nkeep it simple\n")
    (folder / "secrets.env").write_text("TOKEN=hunter2\n")
    (folder / "build").mkdir()
    (folder / "build" / "out.py").write_text("x = 1\n")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = hanlin(
        "chat",
        str(smollm2_path),
        *FAST,
        home=hanlin_home,
        stdin=f"Hi!\n/file {folder}\n/file\nWhat is in these files?\n/bye\n",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    files = attached(result.stderr)
    assert set(files) == {"proj/notes.md", "proj/src/calc.py"}
    assert "secrets.env" not in result.stderr and "out.py" not in result.stderr
    assert "attachments: 2 files" in result.stderr
    assert re.search(r"skipped \S+logo\.png: it is a binary file", result.stderr)
    first, second = prompt_tokens(result.stderr)
    assert second - first >= sum(files.values())  # the second message carries both files


@pytest.mark.slow
def test_binary_and_missing_files_fail_in_one_line_before_the_model_loads(
    smollm2_path: Path, hanlin_home: Path, tmp_path: Path
) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01\x02binary")
    result = hanlin("chat", str(smollm2_path), "x", "--file", str(blob), home=hanlin_home)
    assert_one_line_error(result, "blob.bin", "binary file", "NUL byte")
    result = hanlin(
        "chat", str(smollm2_path), "x", "--file", str(tmp_path / "nope.py"), home=hanlin_home
    )
    assert_one_line_error(result, "nope.py", "there is no such file")
    big = tmp_path / "big.txt"
    big.write_text("word " * 130_000)
    result = hanlin("chat", str(smollm2_path), "x", "--file", str(big), home=hanlin_home)
    assert_one_line_error(result, "big.txt", "over the 524 KB limit for one file")


@pytest.mark.slow
def test_attachments_that_cannot_fit_the_context_are_refused(
    smollm2_path: Path, hanlin_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "long.py").write_text(CODE * 40)
    result = hanlin(
        "chat",
        str(smollm2_path),
        QUESTION,
        "--file",
        str(tmp_path / "long.py"),
        *FAST,
        home=hanlin_home,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("hanlin: error: The attachments are ")
    assert "512-token context" in error and "--ctx " in error
