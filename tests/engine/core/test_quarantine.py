"""move_aside: a damaged file is kept under a name of its own, never deleted or overwritten."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hanlin.engine.core.quarantine import move_aside


def test_moves_the_file_beside_itself_and_logs_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("not = [toml")
    with caplog.at_level(logging.WARNING):
        aside = move_aside(path, "is not valid TOML")
    assert not path.exists()
    assert aside.parent == tmp_path and aside.name.startswith("settings.toml.broken-")
    assert aside.read_text() == "not = [toml"
    assert "is not valid TOML" in caplog.text and str(aside) in caplog.text


def test_many_in_the_same_second_each_keep_their_own_copy(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    asides = []
    for n in range(4):
        path.write_text(f"copy {n}")
        asides.append(move_aside(path, "is damaged"))
    assert len(set(asides)) == 4
    assert sorted(a.read_text() for a in asides) == [f"copy {n}" for n in range(4)]


def test_label_names_the_kind_of_damage(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"garbage")
    assert move_aside(path, "cannot be opened", label="damaged").name.startswith(
        "history.sqlite3.damaged-"
    )


def test_a_file_that_is_gone_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        move_aside(tmp_path / "missing.json", "is damaged")
    assert list(tmp_path.iterdir()) == []
