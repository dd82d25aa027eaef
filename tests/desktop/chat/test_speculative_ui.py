"""Speculative decoding in the window: the draft-model picker with its suggestion in the
model's settings, the settings reaching the answer, the acceptance rate in the status line,
and a draft model that cannot draft answered with a warning, not a failed answer."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hanlin.desktop.chat.dialogs import ModelSettingsDialog
from hanlin.engine.core.settings import ModelSettings, Settings, load_settings, save_settings
from hanlin.engine.store.model_store import ModelStore
from tests.support.desktop_chat import SMOL_ID
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

ANSWER_TIMEOUT_MS = 240_000
EDIT = (
    "Rename `message` to `greeting` in this function:\n\n```python\n"
    'def greet(name):\n    message = "Hello, " + name + "!"\n'
    "    print(message)\n    return message\n```"
)


def send_and_wait(qtbot, win, text: str):
    with qtbot.waitSignal(win.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        win.chat_view.composer.setPlainText(text)
        QTest.keyClick(win.chat_view.composer, Qt.Key.Key_Return)
    return blocker.args[0]


@pytest.mark.slow
def test_the_settings_dialog_suggests_a_draft_model_and_saves_the_choice(
    qtbot, tmp_path: Path
) -> None:
    store = ModelStore()
    for model_id, tiny, n_embd, n_ff in (
        ("coder-main", "qwen2.5-coder", 256, 1024),
        ("coder-draft", "qwen2.5-coder", 64, 128),
        ("glm-tiny", "codegeex4", 32, 64),  # smaller, but another tokenizer
    ):
        path = write_tiny_fim_gguf(tmp_path / f"{model_id}.gguf", tiny, n_embd=n_embd, n_ff=n_ff)
        store.import_file(path, model_id=model_id, family="qwen2.5-coder")

    d = ModelSettingsDialog("coder-main", None)
    qtbot.addWidget(d)
    assert d.speculative.isChecked()  # on by default
    assert d.draft.currentData() is None
    qtbot.waitUntil(lambda: d.suggested is not None, timeout=10_000)
    assert d.suggested == "coder-draft"
    items = [d.draft.itemText(i) for i in range(d.draft.count())]
    assert items == ["None (prompt lookup only)", "coder-draft (suggested)"]
    assert "coder-draft" in d.draft_note.text()
    assert not d.use_suggested.isHidden()
    d.use_suggested.click()
    assert d.draft.currentData() == "coder-draft" and d.use_suggested.isHidden()
    d.save()
    saved = load_settings().settings.models["coder-main"]
    assert saved.draft_model == "coder-draft" and saved.speculative is None

    again = ModelSettingsDialog("coder-main", None)
    qtbot.addWidget(again)
    assert again.draft.currentData() == "coder-draft"
    again.speculative.setChecked(False)
    assert not again.draft.isEnabled()
    again.save()
    assert load_settings().settings.models["coder-main"].speculative is False
    again.restore_defaults()
    again.save()
    assert "coder-main" not in load_settings().settings.to_toml_dict().get("models", {})

    # the small model has no smaller model of its tokenizer to suggest
    small = ModelSettingsDialog("coder-draft", None)
    qtbot.addWidget(small)
    qtbot.waitUntil(lambda: "No installed model" in small.draft_note.text(), timeout=10_000)
    assert small.suggested is None and small.use_suggested.isHidden()


@pytest.mark.slow
def test_the_answer_drafts_and_the_status_line_shows_the_acceptance_rate(
    qtbot, window, smollm2_path: Path
) -> None:
    c = window.controller
    warnings: list[tuple[str, str]] = []
    c.warningRaised.connect(lambda message, hint: warnings.append((message, hint)))
    save_settings(
        Settings(
            chat_model=SMOL_ID,
            models={
                SMOL_ID: ModelSettings(
                    max_tokens=48, temperature=0.0, draft_model=str(smollm2_path)
                )
            },
        )
    )
    c.new_conversation()
    outcome = send_and_wait(qtbot, window, EDIT)
    assert outcome.content.strip()
    stats = outcome.stats
    assert stats["speculative"].startswith("draft model ")
    assert stats["drafted_tokens"] > 0 and stats["acceptance_rate"] is not None
    text = window.speed_label.text()
    assert text.startswith("drafts ") and "% accepted · " in text and text.endswith("tok/s")
    assert warnings == []

    # a draft model that is not installed: a warning, and the answer all the same
    save_settings(
        Settings(
            chat_model=SMOL_ID,
            models={SMOL_ID: ModelSettings(max_tokens=24, temperature=0.0, draft_model="nope")},
        )
    )
    outcome = send_and_wait(qtbot, window, "And now in French?")
    assert outcome.content.strip()
    assert warnings and "draft model 'nope'" in warnings[0][0]
    assert "without it" in warnings[0][0]
