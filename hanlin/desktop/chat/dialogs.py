"""Two small dialogs of the chat: the system prompt (with saved presets) and per-model settings.

Why here: both read and write the settings file (`[system_presets]`,
`[models."id"]`), and both are shown from the chat view's tool bar. The values
shown start from the catalog's defaults for the model; only what the user
changes away from a default is written, so a later catalog update still reaches
every setting the user never touched.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from hanlin.engine.core.settings import ModelSettings, load_settings, update_settings

_NO_PRESET = "(no preset)"


class SystemPromptDialog(QDialog):
    """Edit a conversation's system prompt; pick, save or delete named presets."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("System prompt")
        self.setObjectName("systemPromptDialog")
        self.resize(560, 360)
        self.presets = QComboBox(self)
        self.presets.setObjectName("presetCombo")
        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("systemPromptEdit")
        self.editor.setPlaceholderText("e.g. You are a concise senior Python reviewer.")
        self.editor.setPlainText(text)
        save = QPushButton("Save as preset…", self)
        save.setObjectName("savePreset")
        delete = QPushButton("Delete preset", self)
        delete.setObjectName("deletePreset")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        row = QHBoxLayout()
        row.addWidget(QLabel("Preset:", self))
        row.addWidget(self.presets, 1)
        row.addWidget(save)
        row.addWidget(delete)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.editor, 1)
        layout.addWidget(buttons)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        save.clicked.connect(self._ask_and_save)
        delete.clicked.connect(self._delete_current)
        self.presets.activated.connect(self._apply_preset)
        self._reload_presets()

    def text(self) -> str:
        return self.editor.toPlainText().strip()

    def _reload_presets(self, select: str | None = None) -> None:
        presets = load_settings().settings.system_presets
        self.presets.clear()
        self.presets.addItem(_NO_PRESET)
        for name in sorted(presets):
            self.presets.addItem(name)
        current = self.text()
        match = select or next((n for n, t in presets.items() if t.strip() == current), None)
        if match:
            self.presets.setCurrentText(match)

    def _apply_preset(self, index: int) -> None:
        name = self.presets.itemText(index)
        presets = load_settings().settings.system_presets
        if name in presets:
            self.editor.setPlainText(presets[name])

    def save_preset(self, name: str) -> None:
        name = name.strip()
        if not name:
            return
        update_settings(system_presets={name: self.text()})
        self._reload_presets(select=name)

    def delete_preset(self, name: str) -> None:
        if name in load_settings().settings.system_presets:
            update_settings(system_presets={name: None})
        self._reload_presets()

    def _ask_and_save(self) -> None:
        name, ok = QInputDialog.getText(self, "Save preset", "Preset name:")
        if ok:
            self.save_preset(name)

    def _delete_current(self) -> None:
        name = self.presets.currentText()
        if name != _NO_PRESET:
            self.delete_preset(name)


class _DraftFinder(QObject):
    """Looks for installed models that can draft for one model, on a thread of its own
    (it reads GGUF headers: not for the GUI thread); `found` brings the list back."""

    found = Signal(object)  # list[InstalledModel]

    def start(self, model_id: str) -> None:
        threading.Thread(target=self._run, args=(model_id,), daemon=True).start()

    def _run(self, model_id: str) -> None:
        from hanlin.engine.core.errors import HanlinError
        from hanlin.engine.runtime.draft_model import draft_candidates
        from hanlin.engine.store.model_store import ModelStore

        try:
            found = draft_candidates(ModelStore(), model_id)
        except (HanlinError, OSError):
            found = []
        with contextlib.suppress(RuntimeError):  # the dialog was closed meanwhile
            self.found.emit(found)


class ModelSettingsDialog(QDialog):
    """Temperature, top-p, context length, GPU offload and speculative decoding for one model.

    Starts from the catalog's defaults (`entry.sampling`, `entry.context_length`)
    overlaid with the user's `[models."id"]`; saving writes only the differences.
    """

    def __init__(self, model_id: str, entry: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Settings for {model_id}")
        self.setObjectName("modelSettingsDialog")
        self.model_id = model_id
        from hanlin.engine.chat.sampling import resolve_sampling
        from hanlin.engine.models.families import family_for

        # what the model runs with when the user sets nothing: catalog > family > defaults
        self._defaults_sampling = resolve_sampling(
            getattr(entry, "sampling", None), family_for(getattr(entry, "family", None)), True
        )
        train_ctx = getattr(entry, "context_length", None) or 32768
        from hanlin.engine.models.fit import default_n_ctx

        self._default_ctx = default_n_ctx(train_ctx)
        self._max_ctx = max(train_ctx, self._default_ctx)

        self.temperature = QDoubleSpinBox(self)
        self.temperature.setObjectName("temperature")
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.top_p = QDoubleSpinBox(self)
        self.top_p.setObjectName("topP")
        self.top_p.setRange(0.0, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.n_ctx = QSpinBox(self)
        self.n_ctx.setObjectName("contextLength")
        self.n_ctx.setRange(512, self._max_ctx)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setSuffix(" tokens")
        self.gpu = QSpinBox(self)
        self.gpu.setObjectName("gpuLayers")
        self.gpu.setRange(-1, 999)
        self.gpu.setSpecialValueText("All layers")
        self.gpu.setToolTip(
            "-1 (All layers) offloads the whole model to the GPU; 0 runs on the CPU"
        )

        self.speculative = QCheckBox("Draft tokens ahead and verify them in one batch", self)
        self.speculative.setObjectName("speculative")
        self.speculative.setToolTip(
            "Speculative decoding: tokens copied from the conversation (or guessed by a draft "
            "model) are checked by this model several at a time. The answer is exactly the "
            "same, only faster where the answer repeats code; it switches itself off where "
            "drafts do not pay."
        )
        self.draft = QComboBox(self)
        self.draft.setObjectName("draftModel")
        self.draft.setToolTip(
            "A much smaller installed model with the same tokenizer that guesses tokens for "
            "this one (e.g. Qwen2.5-Coder-0.5B for 7B/14B, Qwen3-0.6B for Qwen3-8B)"
        )
        self.draft_note = QLabel("Looking for installed models that can draft…", self)
        self.draft_note.setObjectName("draftSuggestion")
        self.use_suggested = QPushButton("Use it", self)
        self.use_suggested.setObjectName("useSuggestedDraft")
        self.use_suggested.setVisible(False)
        self.use_suggested.clicked.connect(self.use_suggestion)
        self.speculative.toggled.connect(self.draft.setEnabled)
        self.suggested: str | None = None
        suggestion = QHBoxLayout()
        suggestion.addWidget(self.draft_note, 1)
        suggestion.addWidget(self.use_suggested)

        form = QFormLayout()
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Context length", self.n_ctx)
        form.addRow("GPU offload (layers)", self.gpu)
        form.addRow("Speculative decoding", self.speculative)
        form.addRow("Draft model", self.draft)
        form.addRow("", suggestion)
        note = QLabel(
            "Defaults come from the catalog. Context length and GPU offload apply the next "
            "time the model loads.",
            self,
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        buttons.accepted.connect(self._save_and_accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            self.restore_defaults
        )
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self._load()
        self._finder = _DraftFinder(self)
        self._finder.found.connect(self._show_draft_candidates)
        self._finder.start(model_id)

    def _set_draft_items(self, ids: list[str], selected: str | None) -> None:
        self.draft.clear()
        self.draft.addItem("None (prompt lookup only)", None)
        for model_id in ids:
            label = f"{model_id} (suggested)" if model_id == self.suggested else model_id
            self.draft.addItem(label, model_id)
        if selected and self.draft.findData(selected) < 0:
            self.draft.addItem(selected, selected)  # set by hand (a path, another id)
        self.draft.setCurrentIndex(max(0, self.draft.findData(selected)))

    def _show_draft_candidates(self, candidates: list[Any]) -> None:
        ids = [m.id for m in candidates]
        self.suggested = ids[0] if ids else None
        self._set_draft_items(ids, self.draft.currentData())
        if self.suggested:
            self.draft_note.setText(f"Suggested: {self.suggested}")
            self.draft_note.setToolTip(
                "An installed model with the same tokenizer, at least four times smaller"
            )
        else:
            self.draft_note.setText("No installed model can draft for this one")
            self.draft_note.setToolTip(
                "A draft model has the same tokenizer and is at least four times smaller: "
                "a 0.5B or 0.6B model of its family (Qwen2.5-Coder-0.5B for Qwen2.5-Coder-7B, "
                "Qwen3-0.6B for Qwen3-8B)"
            )
        self.use_suggested.setVisible(
            bool(self.suggested) and self.draft.currentData() != self.suggested
        )

    def use_suggestion(self) -> None:
        if self.suggested:
            self.speculative.setChecked(True)
            self.draft.setCurrentIndex(self.draft.findData(self.suggested))
            self.use_suggested.setVisible(False)

    def _load(self) -> None:
        ms = load_settings().settings.model(self.model_id)
        d = self._defaults_sampling
        self.temperature.setValue(ms.temperature if ms.temperature is not None else d.temperature)
        self.top_p.setValue(ms.top_p if ms.top_p is not None else d.top_p)
        self.n_ctx.setValue(ms.n_ctx or self._default_ctx)
        self.gpu.setValue(ms.n_gpu_layers if ms.n_gpu_layers is not None else -1)
        self.speculative.setChecked(ms.speculative is not False)
        self.draft.setEnabled(ms.speculative is not False)
        self._set_draft_items([], ms.draft_model)

    def restore_defaults(self) -> None:
        d = self._defaults_sampling
        self.temperature.setValue(d.temperature)
        self.top_p.setValue(d.top_p)
        self.n_ctx.setValue(self._default_ctx)
        self.gpu.setValue(-1)
        self.speculative.setChecked(True)
        self.draft.setCurrentIndex(0)

    def save(self) -> ModelSettings:
        """Write the differences from the defaults to `[models."id"]`; returns them."""
        loaded = load_settings()
        ms = loaded.settings.model(self.model_id)
        d = self._defaults_sampling

        def differs(value: float, default: float) -> float | None:
            return None if abs(value - default) < 1e-9 else round(value, 4)

        ms.temperature = differs(self.temperature.value(), d.temperature)
        ms.top_p = differs(self.top_p.value(), d.top_p)
        ms.n_ctx = None if self.n_ctx.value() == self._default_ctx else self.n_ctx.value()
        ms.n_gpu_layers = None if self.gpu.value() == -1 else self.gpu.value()
        ms.speculative = None if self.speculative.isChecked() else False  # on: the default
        ms.draft_model = self.draft.currentData()
        update_settings(models={self.model_id: ms})
        return ms

    def _save_and_accept(self) -> None:
        self.save()
        self.accept()
