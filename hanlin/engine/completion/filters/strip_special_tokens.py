"""Cut a completion at the first special-token text of the model's own vocabulary.

Which texts are special is the vocabulary's call, never a list of marker
shapes kept here: a fixed list that held `<s>`/`</s>` cut every HTML
strikethrough and Markdown `<s>` out of completions, and one that held
`<|endoftext|>` would miss a family whose end marker looks different. The
engine puts into `FilterContext.special_texts` exactly the texts that
tokenize (with special parsing) to one token llama.cpp marks CONTROL and the
GGUF does not declare ordinary (`LlamaVocab.special_texts`): SmolLM2's
`<|endoftext|>` and `<file_sep>`, not `</s>`, and not the ordinary `</s>`
token of Qwen2.5's vocabulary either, which llama.cpp promotes to CONTROL for
its text. The engine already stops generating at a control token by id, so
what this filter catches is a model *spelling* its own end marker in ordinary
tokens, and text from a caller that passes raw output along.
"""

from __future__ import annotations

import re
from functools import lru_cache

from hanlin.engine.completion.filters.base import FilterContext

__all__ = ["strip_special_tokens"]


@lru_cache(maxsize=16)
def _pattern(texts: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation of the texts, longest first (so `<|im_end|>` wins over a prefix of it)."""
    usable = sorted({t for t in texts if t.strip()}, key=len, reverse=True)
    if not usable:
        return None
    return re.compile("|".join(re.escape(t) for t in usable))


def strip_special_tokens(text: str, ctx: FilterContext) -> str:
    """Keep the text before the first of `ctx.special_texts`; without any, keep it all."""
    pattern = _pattern(ctx.special_texts)
    if pattern is None:
        return text
    match = pattern.search(text)
    return text[: match.start()] if match else text
