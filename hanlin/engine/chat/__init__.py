"""Chat: generation with the reasoning split and a context window that drops old turns,
chat templates rendered safely, the sampling precedence, and the history in SQLite.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "stream": ["ChatMessage", "ChatReply", "ChatSession", "GenerationStats", "stream_chat"],
        "thinking": ["StreamEvent", "ThinkSplitter"],
        "template": ["ChatTemplateError", "render_chat_prompt"],
        "sampling": ["resolve_sampling"],
        "history": ["Conversation", "History", "StoredMessage"],
    },
)
