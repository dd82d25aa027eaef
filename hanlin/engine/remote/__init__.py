"""Remote backends: OpenAI-compatible servers (vLLM, llama-server, Ollama, `hanlin serve`)
used for chat and code completion instead of a model loaded in this process.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "endpoint": ["Endpoint", "RemoteTarget", "endpoint_for", "split_remote_ref"],
        "client": ["RemoteClient", "RemoteModel"],
        "chat": ["RemoteChatSession", "RemoteStats", "stream_remote_chat"],
        "completion": ["RemoteCompleter"],
        "listing": ["RemoteListing", "list_remote_models"],
        "errors": [
            "RemoteAuthError",
            "RemoteDisconnectedError",
            "RemoteError",
            "RemoteProtocolError",
            "RemoteTimeoutError",
            "RemoteUnreachableError",
        ],
    },
)
