"""Qt list models for the chat: the conversations in the sidebar and the messages of one.

Why: views sit on models (house pattern). The sidebar's list view and the chat
view read these; neither widget keeps state of its own, so what is on screen is
always what the history database says, and pytest-qt's model tester can check
both models' contracts.

- `ConversationListModel` mirrors `History.list()` or `History.search(text)`;
  renaming a row in place (EditRole) renames the conversation in the database.
- `MessageListModel` holds the messages of the open conversation, including the
  answer being streamed (its row is updated in place with `dataChanged`), and says what
  the model saw of them in its latest answer (`context_state`: the first message still
  seen when old ones no longer fit the context, and how full the context is).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from hanlin.engine.chat.history import Conversation, History, StoredMessage

_Index = QModelIndex | QPersistentModelIndex

IdRole = Qt.ItemDataRole.UserRole + 1
UpdatedRole = Qt.ItemDataRole.UserRole + 2
MessageRole = Qt.ItemDataRole.UserRole + 10  # the whole ChatRow
RoleRole = Qt.ItemDataRole.UserRole + 11
ContentRole = Qt.ItemDataRole.UserRole + 12
ThinkingRole = Qt.ItemDataRole.UserRole + 13
ThinkingSecondsRole = Qt.ItemDataRole.UserRole + 14
StreamingRole = Qt.ItemDataRole.UserRole + 15
CompleteRole = Qt.ItemDataRole.UserRole + 16
StatsRole = Qt.ItemDataRole.UserRole + 17


class ConversationListModel(QAbstractListModel):
    """The sidebar: one row per conversation, most recent first, optionally filtered."""

    def __init__(self, history: History, parent: Any = None) -> None:
        super().__init__(parent)
        self._history = history
        self._rows: list[Conversation] = []
        self._filter = ""
        self.refresh()

    @property
    def filter_text(self) -> str:
        return self._filter

    def set_filter(self, text: str) -> None:
        """Show only conversations whose title or messages contain every word of `text`."""
        self._filter = text
        self.refresh()

    def refresh(self) -> None:
        rows = self._history.search(self._filter) if self._filter.strip() else self._history.list()
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def conversation(self, row: int) -> Conversation:
        return self._rows[row]

    def row_of(self, conversation_id: int) -> int:
        for i, c in enumerate(self._rows):
            if c.id == conversation_id:
                return i
        return -1

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        conv = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conv.title
        if role == Qt.ItemDataRole.ToolTipRole:
            model = f" · {conv.model_id}" if conv.model_id else ""
            return f"{conv.title}{model}"
        if role == IdRole:
            return conv.id
        if role == UpdatedRole:
            return conv.updated_at
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsEditable
            | Qt.ItemFlag.ItemNeverHasChildren
        )

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not isinstance(value, str):
            return False
        conv = self._rows[index.row()]
        self._history.rename(conv.id, value)
        self._rows[index.row()] = self._history.get(conv.id)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole])
        return True

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names[IdRole] = b"conversationId"
        names[UpdatedRole] = b"updatedAt"
        return names


@dataclass(frozen=True, slots=True)
class ChatRow:
    """One message as the chat view shows it."""

    id: int
    role: str
    content: str
    thinking: str | None = None
    thinking_s: float | None = None
    complete: bool = True
    streaming: bool = False
    stats: dict[str, Any] | None = None
    model_id: str | None = None
    #: files sent with a user message (engine/chat/attachments.Attachment), shown as chips
    attachments: tuple[Any, ...] = ()

    @classmethod
    def from_stored(cls, m: StoredMessage) -> ChatRow:
        return cls(
            id=m.id,
            role=m.role,
            content=m.content,
            thinking=m.thinking,
            thinking_s=m.thinking_s,
            complete=m.complete,
            stats=m.stats,
            model_id=m.model_id,
            attachments=m.attachments,
        )


@dataclass(frozen=True, slots=True)
class ContextState:
    """What the model saw of the conversation in its latest answer (that answer's stats)."""

    #: the answer the figures come from, and its model
    answer_id: int
    model_id: str | None
    #: oldest messages left out of the prompt because the conversation outgrew the context
    dropped: int
    #: the context window (tokens; 0: not known) and how much of it the conversation filled
    n_ctx: int
    used: int
    #: the first message the model still saw (None: it saw them all)
    first_seen_id: int | None


class MessageListModel(QAbstractListModel):
    """The messages of the open conversation, in order."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[ChatRow] = []

    def set_rows(self, rows: list[ChatRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[ChatRow]:
        return list(self._rows)

    def row(self, i: int) -> ChatRow:
        return self._rows[i]

    def row_of(self, message_id: int) -> int:
        for i, r in enumerate(self._rows):
            if r.id == message_id:
                return i
        return -1

    def context_state(self) -> ContextState | None:
        """From the latest answer with statistics (a local model's); None before one.

        The engine counts the messages it left out among those sent for that answer: the
        conversation before it, without answers that never got a token (as
        `History.model_turns` sends them).
        """
        for i in range(len(self._rows) - 1, -1, -1):
            row = self._rows[i]
            stats = row.stats or {}
            if row.role != "assistant" or "dropped_messages" not in stats:
                continue
            dropped = int(stats.get("dropped_messages") or 0)
            sent = [r for r in self._rows[:i] if r.role != "assistant" or r.content]
            first = sent[dropped].id if 0 < dropped < len(sent) else None
            return ContextState(
                answer_id=row.id,
                model_id=row.model_id,
                dropped=dropped if first is not None else 0,
                n_ctx=int(stats.get("n_ctx") or 0),
                used=int(stats.get("context_used") or 0),
                first_seen_id=first,
            )
        return None

    def append(self, row: ChatRow) -> None:
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(row)
        self.endInsertRows()

    def update(self, message_id: int, **changes: Any) -> None:
        """Change fields of one message in place (the streaming answer)."""
        i = self.row_of(message_id)
        if i < 0:
            return
        self._rows[i] = replace(self._rows[i], **changes)
        idx = self.index(i, 0)
        self.dataChanged.emit(idx, idx, [])

    def remove(self, message_id: int) -> bool:
        """Drop one message's row (an answer that never began); False if it is not shown."""
        i = self.row_of(message_id)
        if i < 0:
            return False
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._rows[i]
        self.endRemoveRows()
        return True

    def remove_from(self, row: int) -> None:
        """Drop rows `row`.. to the end (edit / regenerate)."""
        if row >= len(self._rows):
            return
        self.beginRemoveRows(QModelIndex(), row, len(self._rows) - 1)
        del self._rows[row:]
        self.endRemoveRows()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        match role:
            case Qt.ItemDataRole.DisplayRole:
                return r.content
            case Qt.ItemDataRole.ToolTipRole:
                return r.role
            case _ if role == IdRole:
                return r.id
            case _ if role == MessageRole:
                return r
            case _ if role == RoleRole:
                return r.role
            case _ if role == ContentRole:
                return r.content
            case _ if role == ThinkingRole:
                return r.thinking
            case _ if role == ThinkingSecondsRole:
                return r.thinking_s
            case _ if role == StreamingRole:
                return r.streaming
            case _ if role == CompleteRole:
                return r.complete
            case _ if role == StatsRole:
                return r.stats
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemNeverHasChildren
        )

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names.update(
            {
                IdRole: b"messageId",
                RoleRole: b"role",
                ContentRole: b"content",
                ThinkingRole: b"thinking",
                ThinkingSecondsRole: b"thinkingSeconds",
                StreamingRole: b"streaming",
                CompleteRole: b"complete",
                StatsRole: b"stats",
            }
        )
        return names
