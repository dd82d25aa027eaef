"""No silent truncation: a conversation that outgrows a small context says so, in both front ends.

Real SmolLM2 loaded with a 256-token context, real widgets offscreen and the installed
`hanlin` command: the window puts "Earlier messages are not seen by the model" above the
first message the model still saw (also after the conversation is reopened), its status
line's meter shows "N / 256 tokens" and follows each answer, the divider offers a larger
context that fits this machine, and taking it saves `n_ctx` for the model (keeping its
other settings) and reloads it; `hanlin chat` prints one notice, once, on stderr.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hanlin.engine.core.settings import ModelSettings, Settings, load_settings, save_settings
from tests.support.commands import HANLIN
from tests.support.desktop_chat import SMOL_ID

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
N_CTX = 256
QUESTIONS = [f"Tell me fact number {i} about the ocean, in one sentence." for i in range(1, 13)]


def send(qtbot, window, text: str):
    with qtbot.waitSignal(window.controller.answerFinished, timeout=240_000) as blocker:
        window.controller.send(text)
    return blocker.args[0]


def test_window_marks_where_the_model_stops_seeing_and_offers_more_context(qtbot, window):
    save_settings(
        Settings(
            chat_model=SMOL_ID,
            threads=1,
            models={SMOL_ID: ModelSettings(max_tokens=24, temperature=0.0, n_ctx=N_CTX)},
        )
    )
    view = window.chat_view
    meters: list[str] = []
    outcome = None
    for question in QUESTIONS:
        outcome = send(qtbot, window, question)
        assert view.context_meter.isVisible()
        meters.append(view.context_meter.text())
        stats = outcome.stats
        assert stats["n_ctx"] == N_CTX
        assert view.context_meter.text() == f"{stats['context_used']:,} / {N_CTX:,} tokens"
        assert stats["context_used"] == stats["prompt_tokens"] + stats["generated_tokens"]
        if stats["dropped_messages"]:
            break
        assert not view.divider.isVisible()  # nothing cut yet: no divider
    assert outcome is not None and outcome.stats["dropped_messages"], "never outgrew the context"
    assert len(set(meters)) > 1  # the meter followed the answers

    def first_seen_widget():
        rows = window.controller.messages.rows()
        answer = next(i for i, r in enumerate(rows) if r.id == outcome.message_id)
        first = rows[:answer][outcome.stats["dropped_messages"]]
        return next(w for w in view.message_widgets() if w.row.id == first.id)

    def divider_is_right_above(widget) -> bool:
        at = view._list.indexOf(widget)
        return view.divider.isVisible() and view._list.indexOf(view.divider) == at - 1

    widget = first_seen_widget()
    assert widget.row.role == "user"
    assert divider_is_right_above(widget)
    qtbot.waitUntil(lambda: view.divider.geometry().bottom() < widget.geometry().top())
    assert "not seen by the model" in view.divider.label.text()
    assert f"{outcome.stats['dropped_messages']} oldest messages" in view.divider.label.toolTip()

    # reopened (as after a restart), the divider is where it was: it comes from the history
    window.controller.open_conversation(window.controller.current_id)
    assert divider_is_right_above(first_seen_widget())

    # SmolLM2 (100 MB) fits this machine at twice the context: the divider offers it
    button = view.divider.raise_button
    qtbot.waitUntil(button.isVisible, timeout=60_000)
    assert button.text() == f"Use a {2 * N_CTX:,}-token context"
    button.click()
    kept = load_settings().settings.model(SMOL_ID)
    assert (kept.n_ctx, kept.max_tokens, kept.temperature) == (2 * N_CTX, 24, 0.0)
    assert not button.isVisible()
    assert f"{2 * N_CTX:,}-token context" in view.divider.label.text()
    host = window.controller.host
    qtbot.waitUntil(
        lambda: host.current is not None and host.current.n_ctx == 2 * N_CTX, timeout=120_000
    )

    after = send(qtbot, window, "And one more fact, please.")
    assert after.stats["n_ctx"] == 2 * N_CTX
    assert view.context_meter.text().endswith(f"/ {2 * N_CTX:,} tokens")
    assert view.divider.isVisible() == bool(after.stats["dropped_messages"])


def test_cli_says_once_that_earlier_messages_are_not_seen(smollm2_path: Path, hanlin_home):
    config = hanlin_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.toml").write_text("threads = 1\n")
    flags = ["--ctx", str(N_CTX), "--max-tokens", "24", "--temperature", "0"]
    result = subprocess.run(
        [*HANLIN, "chat", str(smollm2_path), *flags],
        cwd=ROOT,
        env={**os.environ, "HANLIN_HOME": str(hanlin_home)},
        input="\n".join(QUESTIONS[:8]) + "\n",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "not seen by the model" in line]
    assert len(notes) == 1, result.stderr  # once, when it first happens
    (note,) = notes
    assert note.startswith("note: The conversation no longer fits the model's 256-token context")
    assert f"/ {N_CTX} tokens" in note
    assert f"`--ctx {2 * N_CTX}` fits this machine" in note
    assert "\x1b[" not in note  # not a terminal: no colour codes
    assert "not seen" not in result.stdout  # the answers alone go to stdout
