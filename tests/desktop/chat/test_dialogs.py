"""System prompt with presets, and per-model settings over the catalog's defaults."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from hanlin.desktop.chat.dialogs import ModelSettingsDialog, SystemPromptDialog
from hanlin.engine.core.settings import load_settings
from hanlin.engine.models.catalog import load_catalog
from tests.support.desktop_chat import SMOL_ID


def test_system_prompt_presets_are_saved_picked_and_deleted(qtbot):
    d = SystemPromptDialog("You review Python code. Be terse.")
    qtbot.addWidget(d)
    d.save_preset("Reviewer")
    assert load_settings().settings.system_presets == {
        "Reviewer": "You review Python code. Be terse."
    }
    assert d.presets.currentText() == "Reviewer"

    fresh = SystemPromptDialog("")
    qtbot.addWidget(fresh)
    items = [fresh.presets.itemText(i) for i in range(fresh.presets.count())]
    assert "Reviewer" in items
    fresh.presets.setCurrentText("Reviewer")
    fresh.presets.activated.emit(fresh.presets.currentIndex())
    assert fresh.text() == "You review Python code. Be terse."
    fresh.delete_preset("Reviewer")
    assert load_settings().settings.system_presets == {}


def test_system_prompt_is_per_conversation_and_sent_first(qtbot, window):
    c = window.controller
    c.new_conversation()
    c.set_system_prompt("Answer in French.")
    assert window.chat_view.system_button.text() == "System prompt ✓"
    conv = c.current_conversation()
    assert conv is not None and conv.system_prompt == "Answer in French."
    window.history.append(conv.id, "user", "Hello")
    model = c.current_model()
    assert model is not None
    request = c._request(model, c.current_conversation())
    assert request.turns[0] == ("system", "Answer in French.")
    c.new_conversation()
    assert c.conversation_system_prompt() == ""  # a new chat starts without it


def test_model_settings_start_from_catalog_defaults_and_save_differences(qtbot):
    entry = next(e for e in load_catalog().entries if "chat" in e.roles)
    d = ModelSettingsDialog(entry.id, entry)
    qtbot.addWidget(d)
    assert abs(d.temperature.value() - entry.sampling.temperature) < 1e-6
    assert abs(d.top_p.value() - entry.sampling.top_p) < 1e-6
    assert d.gpu.value() == -1 and d.gpu.text() == "All layers"
    d.temperature.setValue(0.2)
    d.gpu.setValue(0)
    d.save()
    saved = load_settings().settings.models[entry.id]
    assert saved.temperature == 0.2 and saved.n_gpu_layers == 0
    assert saved.top_p is None and saved.n_ctx is None  # untouched: still the catalog's

    again = ModelSettingsDialog(entry.id, entry)
    qtbot.addWidget(again)
    assert abs(again.temperature.value() - 0.2) < 1e-6 and again.gpu.value() == 0
    again.restore_defaults()
    again.save()
    assert entry.id not in load_settings().settings.to_toml_dict().get("models", {})


def test_model_settings_reach_the_generation_request(qtbot, window):
    c = window.controller
    d = ModelSettingsDialog(SMOL_ID, None)
    qtbot.addWidget(d)
    d.top_p.setValue(0.5)
    d.n_ctx.setValue(2048)
    d.gpu.setValue(0)
    d.save()
    c.new_conversation()
    conv = c.current_conversation()
    window.history.append(conv.id, "user", "Hi")
    request = c._request(c.current_model(), conv)
    assert request.sampling.top_p == 0.5
    assert request.n_ctx == 2048
    assert request.n_gpu_layers == 0


def test_catalog_sampling_sits_between_the_user_and_the_family(qtbot, window):
    """The request carries the user's settings over the catalog entry's; the engine adds
    the family's recommendation below both (engine/chat/sampling.py)."""
    from hanlin.desktop.chat.controller import ModelChoice
    from hanlin.engine.chat.sampling import resolve_sampling
    from hanlin.engine.core.settings import ModelSettings, load_settings, save_settings
    from hanlin.engine.models.families import family_for

    c = window.controller
    entry = load_catalog().get("qwen3-4b-q4km")
    choice = ModelChoice(
        id=entry.id,
        name=entry.name,
        family="qwen3",
        path=c.current_model().path,
        thinking_switch=True,
        reasoning=True,
        entry=entry,
    )
    conv = window.history.create(model_id=entry.id, thinking=False)
    window.history.append(conv.id, "user", "Hi")
    request = c._request(choice, conv)
    used = resolve_sampling(request.sampling, family_for("qwen3"), thinking=request.thinking)
    assert not request.thinking
    assert (used.temperature, used.top_p, used.max_tokens) == (0.7, 0.8, 8192)
    settings = load_settings().settings
    settings.models[entry.id] = ModelSettings(top_p=0.5, max_tokens=100)
    save_settings(settings)
    request = c._request(choice, conv)
    used = resolve_sampling(request.sampling, family_for("qwen3"), thinking=request.thinking)
    assert (used.temperature, used.top_p, used.max_tokens) == (0.7, 0.5, 100)
    assert request.max_tokens == 100
