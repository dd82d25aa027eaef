"""A small panel with the editor-completion numbers the language server records.

Shows what `hanlin.engine.completion.stats.load_completion_stats()` returns: suggestions
offered, shown, accepted, the acceptance rate and characters accepted, plus the
busiest languages. Local numbers only: nothing leaves the machine.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QWidget


class CompletionStatsPanel(QGroupBox):
    """Read-only view of a `AcceptanceStats`; `set_stats(None)` shows "no data yet"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Editor completion", parent)
        self.setObjectName("completionStatsPanel")
        form = QFormLayout(self)
        self.offered = QLabel("—")
        self.shown = QLabel("—")
        self.accepted = QLabel("—")
        self.rate = QLabel("—")
        self.chars = QLabel("—")
        self.languages = QLabel("")
        self.languages.setWordWrap(True)
        form.addRow("Suggestions offered", self.offered)
        form.addRow("Shown", self.shown)
        form.addRow("Accepted", self.accepted)
        form.addRow("Acceptance rate", self.rate)
        form.addRow("Characters accepted", self.chars)
        form.addRow(self.languages)
        self.setToolTip("Counted locally by hanlin-lsp in your editor; never sent anywhere.")

    def set_stats(self, stats: Any | None) -> None:
        total = stats.total if stats is not None else None
        if total is None or total.is_empty():
            for label in (self.offered, self.shown, self.accepted, self.rate, self.chars):
                label.setText("—")
            self.languages.setText("No completions yet: connect an editor\nto hanlin-lsp.")
            return
        self.offered.setText(f"{total.offered:,}")
        self.shown.setText(f"{total.shown:,}")
        partly = f" (+{total.partially_accepted:,} in part)" if total.partially_accepted else ""
        self.accepted.setText(f"{total.accepted:,}{partly}")
        rate = total.acceptance_rate
        self.rate.setText("—" if rate is None else f"{rate:.0%}")
        self.chars.setText(f"{total.chars_accepted:,}")
        busiest = sorted(
            ((lang or "other", s) for lang, s in stats.languages.items() if not s.is_empty()),
            key=lambda item: item[1].accepted,
            reverse=True,
        )[:3]
        self.languages.setText(
            "  ".join(f"{lang}: {s.accepted:,}/{s.shown or s.offered:,}" for lang, s in busiest)
        )
