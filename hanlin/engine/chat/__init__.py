"""Chat: generation with the reasoning split and a context window that drops old turns,
and the conversation history in SQLite.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "stream": [
            "ChatMessage",
            "ChatReply",
            "ChatSession",
            "GenerationStats",
            "StreamEvent",
            "stream_chat",
        ],
        "history": ["Conversation", "History", "StoredMessage"],
    },
)
