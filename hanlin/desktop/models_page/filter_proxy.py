"""Filtering and sorting of the catalog table: by family, by role, by text.

A plain `QSortFilterProxyModel` over `CatalogTableModel`; it reads the custom
roles (family, roles, search text, sort key) so it never parses display strings.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel

from hanlin.desktop.models_page.catalog_table import (
    INSTALLED,
    FamilyRole,
    RolesRole,
    SearchTextRole,
    SortRole,
    StatusRole,
)

_Index = QModelIndex | QPersistentModelIndex
_HAS_FILTER_CHANGE = hasattr(QSortFilterProxyModel, "beginFilterChange")


class CatalogFilterProxy(QSortFilterProxyModel):
    """Shows the rows matching a family, a role, an installed-only switch and a text."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._family: str | None = None
        self._role: str | None = None
        self._text = ""
        self._installed_only = False
        self.setSortRole(SortRole)
        self.setDynamicSortFilter(True)

    @property
    def family(self) -> str | None:
        return self._family

    @property
    def role(self) -> str | None:
        return self._role

    def set_family(self, family: str | None) -> None:
        """Only rows of this family (None or "" for all)."""
        self._change("_family", family or None)

    def set_role(self, role: str | None) -> None:
        """Only rows offering this role, "chat" or "completion" (None or "" for all)."""
        self._change("_role", role or None)

    def set_text(self, text: str) -> None:
        """Rows whose id, name, family, size, quant, description or license contain every word."""
        self._change("_text", text.strip().lower())

    def set_installed_only(self, on: bool) -> None:
        self._change("_installed_only", bool(on))

    def _change(self, attr: str, value: object) -> None:
        if getattr(self, attr) == value:
            return
        if _HAS_FILTER_CHANGE:  # Qt >= 6.10: invalidateFilter() is deprecated
            self.beginFilterChange()
            setattr(self, attr, value)
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - older Qt
            setattr(self, attr, value)
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        if model is None:
            return False
        index = model.index(source_row, 0, source_parent)
        if self._family and model.data(index, FamilyRole) != self._family:
            return False
        if self._role and self._role not in (model.data(index, RolesRole) or ()):
            return False
        if self._installed_only and model.data(index, StatusRole) != INSTALLED:
            return False
        if self._text:
            haystack = model.data(index, SearchTextRole) or ""
            return all(word in haystack for word in self._text.split())
        return True
