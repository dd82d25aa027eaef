"""What a model is before it is loaded: the catalog, model families, the GGUF header, and
whether it fits this machine.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "catalog": [
            "Catalog",
            "CatalogEntry",
            "Sampling",
            "is_projector_file",
            "load_catalog",
        ],
        "shard_names": ["ShardName", "parse_shard_name", "shard_files"],
        "families": ["FamilyBehavior", "family_for", "guess_family"],
        "gguf_info": ["GGUFInfo", "read_gguf_info"],
        "fit": ["DEFAULT_N_CTX", "FitVerdict", "default_n_ctx", "fit_for_entry", "fit_for_file"],
    },
)
