"""One loaded llama.cpp model: loading (GPU with a said-out-loud CPU fallback), the
low-level generation session, llama.cpp's log, and the hardware it runs on.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "loader": ["LoadOptions", "LoadedModel", "ModelHost", "load_model"],
        "session": ["LlamaSession", "build_sampler"],
        "llama_log": ["route_llama_logs"],
        "hardware": ["HardwareInfo", "detect_hardware"],
        "kv_state_store": ["KVStateStore"],
        "speculative": ["PromptLookupDrafter", "Speculator", "speculator_for"],
        "draft_model": [
            "DraftModelError",
            "draft_candidates",
            "load_draft_model",
            "suggest_draft_model",
        ],
    },
)
