"""Inline code completion: FIM templates, the context ring of other files, the
post-processing filters (filters/, one module per filter), the engine, and the
local acceptance statistics.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "engine": ["CompletionEngine", "CompletionRequest", "CompletionResult"],
        "fim": ["FimTemplate", "detect_template"],
        "context_ring": ["ContextChunk", "ContextRing"],
        "filters": ["FilterContext", "postprocess"],
        "stats": ["AcceptanceRecorder", "AcceptanceStats", "load_completion_stats"],
    },
)
