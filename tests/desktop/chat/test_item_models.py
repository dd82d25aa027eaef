"""The chat's list models (checked by pytest-qt's model tester) and the Markdown renderer."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


from PySide6.QtCore import Qt

from hanlin.desktop.chat.item_models import (
    ChatRow,
    ContentRole,
    ConversationListModel,
    IdRole,
    MessageListModel,
    StreamingRole,
    ThinkingRole,
)
from hanlin.desktop.chat.markdown import COPY_SCHEME, MarkdownRenderer
from hanlin.engine.chat.history import History

# -- model tester ------------------------------------------------------------------------


def test_conversation_model_passes_model_tester(qtmodeltester):
    history = History()
    for title in ("alpha", "beta", "gamma"):
        c = history.create(title)
        history.append(c.id, "user", f"about {title}")
    model = ConversationListModel(history)
    qtmodeltester.check(model)
    assert model.rowCount() == 3
    assert model.data(model.index(0, 0)) == "gamma"  # most recent first
    model.set_filter("beta")
    qtmodeltester.check(model)
    assert [model.data(model.index(i, 0)) for i in range(model.rowCount())] == ["beta"]
    history.close()


def test_conversation_model_renames_in_place(qtmodeltester, qtbot):
    history = History()
    c = history.create("old title")
    model = ConversationListModel(history)
    index = model.index(0, 0)
    assert model.flags(index) & Qt.ItemFlag.ItemIsEditable
    with qtbot.waitSignal(model.dataChanged):
        assert model.setData(index, "new title")
    assert history.get(c.id).title == "new title"
    assert model.data(index, IdRole) == c.id
    qtmodeltester.check(model)
    history.close()


def test_message_model_passes_model_tester_through_a_stream(qtmodeltester):
    model = MessageListModel()
    qtmodeltester.check(model)
    model.append(ChatRow(1, "user", "hi"))
    model.append(ChatRow(2, "assistant", "", complete=False, streaming=True))
    for text in ("He", "Hello", "Hello there"):
        model.update(2, content=text, thinking="hmm")
    qtmodeltester.check(model)
    idx = model.index(1, 0)
    assert model.data(idx, ContentRole) == "Hello there"
    assert model.data(idx, ThinkingRole) == "hmm"
    assert model.data(idx, StreamingRole) is True
    model.remove_from(1)
    qtmodeltester.check(model)
    assert model.rowCount() == 1


# -- Markdown ----------------------------------------------------------------------------


def test_message_model_removes_one_row_from_the_middle(qtmodeltester, qtbot):
    model = MessageListModel()
    for i, role in enumerate(["user", "assistant", "user", "assistant"], start=1):
        model.append(ChatRow(i, role, "" if i == 2 else f"text {i}"))
    qtmodeltester.check(model)
    with qtbot.waitSignal(model.rowsRemoved) as removed:
        assert model.remove(2)  # the empty answer between two questions
    assert removed.args[1:] == [1, 1]
    assert [r.id for r in model.rows()] == [1, 3, 4]
    assert not model.remove(2)  # already gone
    qtmodeltester.check(model)


def test_markdown_renders_code_blocks_with_highlight_and_copy_links():
    text = "Use **this**:\n\n```python\ndef f(x):\n    return x + 1\n```\n\nand `inline`.\n"
    out = MarkdownRenderer().render(text)
    assert "<strong>this</strong>" in out.html
    assert out.code_blocks == ["def f(x):\n    return x + 1\n"]
    assert f'href="{COPY_SCHEME}0"' in out.html
    assert "<pre" in out.html and "style=" in out.html  # pygments inline colours
    assert ">def</span>" in out.html  # the keyword got its own span
    assert "inline" in out.html


def test_markdown_unterminated_fence_while_streaming_and_escaping():
    out = MarkdownRenderer(dark=True).render("Partial:\n```js\nlet a = '<b>'")
    assert out.code_blocks == ["let a = '<b>'"]
    assert "<b>'" not in out.html  # escaped, never raw HTML
    raw = MarkdownRenderer().render("<script>alert(1)</script>")
    assert "<script>" not in raw.html


def test_model_picker_lists_chat_models_only(qtbot, smollm2_path):
    """Catalog models without the chat role (base models for completion) are left out;
    imports (no catalog entry) are offered; families decide the thinking switch."""
    from hanlin.desktop.chat.controller import ChatController
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import InstalledModel

    catalog = load_catalog()
    chat_entry = next(e for e in catalog.entries if e.roles == ("chat",) and e.family == "qwen3")
    base_entry = next(e for e in catalog.entries if "chat" not in e.roles)

    class Installed:  # the store's answer, as it would be after two pulls and an import
        def installed(self) -> list[InstalledModel]:
            def model(mid, entry, family, source):
                return InstalledModel(
                    id=mid,
                    path=smollm2_path,
                    size_bytes=1,
                    family=family,
                    source=source,
                    repo=None,
                    file=None,
                    commit=None,
                    sha256=None,
                    catalog_entry=entry,
                )

            return [
                model(chat_entry.id, chat_entry, chat_entry.family, "catalog"),
                model(base_entry.id, base_entry, base_entry.family, "catalog"),
                model("my-import", None, "llama", "import"),
            ]

    history = History()
    controller = ChatController(history, TaskRunner(), Installed())
    choices = {m.id: m for m in controller.available_models()}
    assert set(choices) == {chat_entry.id, "my-import"}
    assert choices[chat_entry.id].thinking_switch is True
    assert choices[chat_entry.id].name == chat_entry.name
    assert choices["my-import"].thinking_switch is False
    history.close()
