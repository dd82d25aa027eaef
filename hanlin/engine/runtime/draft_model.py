"""Draft models for speculative decoding: which one fits, load it, prove its tokenizer matches.

Why a module of its own: a draft model only helps if it proposes *the same token ids* the
main model would sample — the same tokenizer, not merely the same family name — and only
if it is much cheaper to run. Getting that wrong is silent (every draft rejected: slower,
never wrong), so it is checked, the way llama.cpp's `common_speculative_are_compatible`
does: same vocabulary type, the same BOS/EOS where they are added, vocabulary sizes within
128 (Qwen's GGUFs pad the vocabulary to the embedding size, which differs between 0.5B and
7B), and the same text for a sample of token ids spread over the whole vocabulary,
including its last ids, where Qwen2.5 and Qwen3 differ (`<think>`).

- `suggest_draft_model(store, main)` / `draft_candidates`: installed models that can draft
  for `main` (same tokenizer, at least `MIN_SIZE_RATIO` times smaller), from GGUF headers;
- `load_draft_model(main, ref)`: resolves a catalog id or a path, loads it beside the main
  model (same context length, threads and GPU offload) and checks it;
- `check_draft_compatible(main, draft)`: the check on two loaded models; `DraftModelError`
  names both and says what to choose instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlin.engine.core.errors import ModelLoadError

if TYPE_CHECKING:
    from hanlin.engine.core.cancel import CancelToken, ProgressCallback
    from hanlin.engine.runtime.loader import LoadedModel, ModelHost
    from hanlin.engine.store.model_store import InstalledModel, ModelStore

__all__ = [
    "MIN_SIZE_RATIO",
    "DraftModelError",
    "check_draft_compatible",
    "draft_candidates",
    "load_draft_model",
    "same_tokenizer_files",
    "suggest_draft_model",
]

#: a draft model must be at least this many times smaller than the model it drafts for
#: (Qwen2.5-Coder-0.5B Q4_K_M is 9.5x smaller than 7B, Qwen3-0.6B 10x smaller than 8B)
MIN_SIZE_RATIO = 4.0
#: vocabulary sizes may differ by padding only (llama.cpp: SPEC_VOCAB_MAX_SIZE_DIFFERENCE)
MAX_VOCAB_DIFFERENCE = 128
#: token ids compared: the first ones, evenly spread ones, and the last common ones
_SAMPLE_HEAD = 512
_SAMPLE_SPREAD = 2048
_SAMPLE_TAIL = 512
_FIRST_CHECKED = 5  # llama.cpp skips ids 0-4 (unk/bos/eos/pad vary between conversions)


class DraftModelError(ModelLoadError):
    """The chosen draft model cannot draft for this model (another tokenizer, or missing)."""


def _sample_ids(n: int) -> list[int]:
    ids = set(range(_FIRST_CHECKED, min(n, _SAMPLE_HEAD)))
    step = max(1, n // _SAMPLE_SPREAD)
    ids.update(range(_FIRST_CHECKED, n, step))
    ids.update(range(max(_FIRST_CHECKED, n - _SAMPLE_TAIL), n))
    return sorted(ids)


def _hint(main_id: str) -> str:
    return (
        f"choose a smaller model of {main_id}'s own family as its draft model (e.g. "
        "Qwen2.5-Coder-0.5B for Qwen2.5-Coder-7B, Qwen3-0.6B for Qwen3-8B) in the model's "
        "settings, or remove `draft_model` from its [models] entry"
    )


def check_draft_compatible(main: LoadedModel, draft: LoadedModel) -> None:
    """Raise `DraftModelError` unless `draft`'s tokenizer gives the same ids as `main`'s."""
    import llama_cpp

    mv, dv = main.vocab, draft.vocab
    problem: str | None = None
    if llama_cpp.llama_vocab_type(mv) != llama_cpp.llama_vocab_type(dv):
        problem = "its tokenizer is of another kind"
    elif llama_cpp.llama_vocab_get_add_bos(mv) != llama_cpp.llama_vocab_get_add_bos(dv) or (
        llama_cpp.llama_vocab_get_add_bos(mv)
        and llama_cpp.llama_vocab_bos(mv) != llama_cpp.llama_vocab_bos(dv)
    ):
        problem = "it starts prompts with another beginning-of-text token"
    elif llama_cpp.llama_vocab_get_add_eos(mv) != llama_cpp.llama_vocab_get_add_eos(dv) or (
        llama_cpp.llama_vocab_get_add_eos(mv)
        and llama_cpp.llama_vocab_eos(mv) != llama_cpp.llama_vocab_eos(dv)
    ):
        problem = "it ends prompts with another end-of-text token"
    else:
        n_main = llama_cpp.llama_vocab_n_tokens(mv)
        n_draft = llama_cpp.llama_vocab_n_tokens(dv)
        if abs(n_main - n_draft) > MAX_VOCAB_DIFFERENCE:
            problem = f"its vocabulary has {n_draft} tokens, this model's {n_main}"
        else:
            for i in _sample_ids(min(n_main, n_draft)):
                a = llama_cpp.llama_vocab_get_text(mv, i)
                b = llama_cpp.llama_vocab_get_text(dv, i)
                if a != b:
                    problem = (
                        f"token {i} is {_show(b)} in it but {_show(a)} in this model "
                        "(another tokenizer)"
                    )
                    break
    if problem is not None:
        raise DraftModelError(
            f"{draft.model_id} cannot be the draft model of {main.model_id}: {problem}",
            _hint(main.model_id),
        )


def _show(text: bytes | None) -> str:
    return repr((text or b"").decode("utf-8", errors="replace"))


def load_draft_model(
    main: LoadedModel,
    ref: str,
    *,
    store: ModelStore | None = None,
    host: ModelHost | None = None,
    cancel: CancelToken | None = None,
    on_progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Load `ref` (a catalog id, an installed id or a GGUF path) to draft for `main`.

    It gets `main`'s context length (the drafts follow the whole conversation), threads
    and GPU offload; through `host` when given (a `ModelHost` of its own keeps it loaded
    between answers). Raises `DraftModelError` when it is not installed or its tokenizer
    differs (a model loaded only for this is closed again), `Cancelled` on cancel.
    """
    from hanlin.engine.core.errors import (
        ModelFileError,
        ModelNotInstalledError,
        UnknownModelError,
    )
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    if store is None:
        from hanlin.engine.store.model_store import ModelStore

        store = ModelStore()
    try:
        installed = store.resolve(ref)
    except (UnknownModelError, ModelNotInstalledError, ModelFileError) as exc:
        raise DraftModelError(
            f"The draft model {ref!r} of {main.model_id} is not available: {exc.message}",
            exc.hint or _hint(main.model_id),
        ) from None
    options = LoadOptions(
        n_ctx=main.n_ctx,
        n_gpu_layers=main.options.n_gpu_layers,
        threads=main.threads,
        n_batch=main.options.n_batch,
        use_mmap=main.options.use_mmap,
        flash_attn=main.options.flash_attn,
    )
    kwargs: dict[str, Any] = {
        "model_id": installed.id,
        "family": installed.family,
        "options": options,
        "cancel": cancel,
        "on_progress": on_progress,
    }
    try:
        draft = host.get(installed.path, **kwargs) if host else load_model(installed.path, **kwargs)
    except (ModelFileError, ModelLoadError) as exc:  # not Cancelled: that one propagates
        raise DraftModelError(
            f"The draft model {installed.id} of {main.model_id} could not be loaded: {exc.message}",
            exc.hint,
        ) from None
    try:
        check_draft_compatible(main, draft)
    except DraftModelError:
        if host is None:
            draft.close()
        raise
    return draft


# ---------------------------------------------------------------- suggestion (headers only)


def _file_key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _tokenizer_header(key: tuple[str, int, int]) -> tuple[Any, ...] | None:
    """(model, pre, n_tokens, bos, eos, add_bos, add_eos) from a GGUF header; None: unreadable."""
    from hanlin.engine.core.errors import ModelFileError
    from hanlin.engine.models.gguf_info import read_gguf_info

    try:
        meta = read_gguf_info(key[0]).metadata
    except (ModelFileError, OSError):
        return None
    tokens = meta.get("tokenizer.ggml.tokens")
    n = getattr(tokens, "length", None) or (len(tokens) if isinstance(tokens, list) else 0)
    return (
        meta.get("tokenizer.ggml.model"),
        meta.get("tokenizer.ggml.pre"),
        n,
        meta.get("tokenizer.ggml.bos_token_id"),
        meta.get("tokenizer.ggml.eos_token_id"),
        meta.get("tokenizer.ggml.add_bos_token"),
        meta.get("tokenizer.ggml.add_eos_token"),
    )


@functools.lru_cache(maxsize=16)
def _token_texts(key: tuple[str, int, int]) -> tuple[str, ...]:
    from hanlin.engine.core.errors import ModelFileError
    from hanlin.engine.models.gguf_info import read_metadata_array

    try:
        tokens = read_metadata_array(key[0], "tokenizer.ggml.tokens")
    except (ModelFileError, OSError):
        return ()
    return tuple(str(t) for t in tokens or ())


def same_tokenizer_files(a: Path | str, b: Path | str) -> bool:
    """Whether two GGUF files tokenize alike, from their headers (the check above, on files)."""
    try:
        ka, kb = _file_key(Path(a)), _file_key(Path(b))
    except OSError:
        return False
    ha, hb = _tokenizer_header(ka), _tokenizer_header(kb)
    if ha is None or hb is None or not ha[2] or not hb[2]:
        return False
    model_a, pre_a, n_a, bos_a, eos_a, add_bos_a, add_eos_a = ha
    model_b, pre_b, n_b, bos_b, eos_b, add_bos_b, add_eos_b = hb
    if model_a != model_b or pre_a != pre_b or abs(n_a - n_b) > MAX_VOCAB_DIFFERENCE:
        return False
    if bool(add_bos_a) != bool(add_bos_b) or (add_bos_a and bos_a != bos_b):
        return False
    if bool(add_eos_a) != bool(add_eos_b) or (add_eos_a and eos_a != eos_b):
        return False
    ta, tb = _token_texts(ka), _token_texts(kb)
    n = min(len(ta), len(tb))
    return n > 0 and all(ta[i] == tb[i] for i in _sample_ids(n))


def _roles(model: InstalledModel) -> Sequence[str]:
    entry = model.catalog_entry
    return tuple(getattr(entry, "roles", ())) if entry is not None else ("chat",)


def draft_candidates(store: ModelStore, main_model: str | InstalledModel) -> list[InstalledModel]:
    """Installed models that can draft for `main_model`, the best first.

    Each has the same tokenizer (GGUF headers: kind, pre-tokenizer, size, BOS/EOS and a
    sample of token texts) and is at least `MIN_SIZE_RATIO` times smaller. Order: a model
    of the same family first, then a chat model (its guesses follow a chat answer better
    than a base model's), then the smallest. Reads headers (cached per file): call it off
    the GUI thread.
    """
    main = store.get(main_model) if isinstance(main_model, str) else main_model
    if main is None or not main.size_bytes:
        return []
    candidates = [
        m
        for m in store.installed()
        if m.id != main.id
        and Path(m.path) != Path(main.path)
        and m.size_bytes
        and m.size_bytes * MIN_SIZE_RATIO <= main.size_bytes
    ]
    candidates.sort(
        key=lambda m: (
            m.family != main.family or m.family is None,
            "chat" not in _roles(m),
            m.size_bytes,
        )
    )
    return [m for m in candidates if same_tokenizer_files(main.path, m.path)]


def suggest_draft_model(
    store: ModelStore, main_model: str | InstalledModel
) -> InstalledModel | None:
    """The installed model best suited to draft for `main_model` (`draft_candidates`'s
    first), or None: e.g. Qwen2.5-Coder-0.5B for Qwen2.5-Coder-7B, Qwen3-0.6B for Qwen3-8B."""
    candidates = draft_candidates(store, main_model)
    return candidates[0] if candidates else None
