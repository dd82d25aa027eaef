"""Hanlin's engine: everything the front ends need, in sub-packages that are the architecture.

- `core`: errors, cancel tokens and progress, paths, atomic writes, file locks, settings
- `models`: the catalog, model families, the GGUF header reader, the fit verdict
- `store`: installed models: pulls from the Hub (resume, verify), imports, the manifest
- `runtime`: one loaded llama.cpp model: loading, the low-level session, logs, hardware
- `chat`: chat generation with the reasoning split, chat history (SQLite)
- `completion`: FIM templates, the context ring, post-processing filters, the engine, stats

Data flows one way: front ends (`hanlin.desktop`, `hanlin.lsp_server`) call the engine; the
engine imports neither Qt nor pygls (a test proves it). Each sub-package's `__init__` names
its public surface; inside the engine, modules import each other's modules directly (never a
package `__init__`), so the packages can depend on each other without import cycles.
"""
