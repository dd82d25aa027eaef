"""Fill-in-the-middle prompts, built as token ids from the model's own FIM tokens.

Code models are trained to complete the *middle* of a file given the text
before and after the cursor, marked with special tokens that differ per family
(Qwen2.5-Coder's `<|fim_prefix|>`, DeepSeek-Coder's `<｜fim▁begin｜>`,
StarCoder's `<fim_prefix>`, CodeGeeX4's `<|code_suffix|>`, which also puts the suffix
first and wraps the whole request in a chat turn with `###PATH:`/`###LANGUAGE:` lines).
llama-cpp-python's high-level `suffix=` path does not use those tokens, and tokenizing
a string that *contains* them is fragile, so prompts are assembled here as token ids
with the specials inserted as ids.

Templates live in a registry (`FIM_TEMPLATES`), not an if/elif chain: a new
family is one `register_template` call. `detect_template` picks one from the
GGUF vocabulary itself (`llama_vocab_fim_pre/suf/mid`, then the token strings),
with the catalog family only as a hint; a model without FIM tokens (SmolLM2,
chat models) gets the prefix-only template and simply continues the text.

Prompts are laid out *prefix-stable*: other files' context first, then the
current file's prefix, so that a keystroke changes only the tail of the token
list and the KV cache can keep everything before it.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from hanlin.engine.completion.context_ring import ContextChunk
from hanlin.engine.core.errors import ModelFileError
from hanlin.engine.models.gguf_info import read_metadata_array

if TYPE_CHECKING:  # pragma: no cover - typing only
    import llama_cpp

__all__ = [
    "FIM_TEMPLATES",
    "FimPrompt",
    "FimTemplate",
    "LlamaVocab",
    "PromptLimits",
    "Tokenizer",
    "build_prompt",
    "detect_template",
    "get_template",
    "register_template",
    "window_prefix",
    "window_suffix",
]


@dataclass(frozen=True)
class FimTemplate:
    """How one model family marks prefix, suffix and middle (and other files).

    `prefix`/`suffix`/`middle` are the special tokens' texts; all None means
    prefix-only (no FIM). `repo_name`/`file_sep` are the repository-context
    tokens where the family has them (Qwen2.5-Coder, StarCoder2); otherwise
    other files are written as comment-headed text before the current file.
    `stop` lists further special texts that end a completion.

    Families whose FIM prompt is a chat turn (CodeGeeX4) add: `begin`, special texts
    that open the prompt; `header`, text after them with `{context}` (other files, each
    written with `context_item` and its `{path}`/`{code}`), `{path}`, `{language}` and
    `{mode}` (LINE or BLOCK) filled in; `suffix_first` for the suffix-prefix-middle order;
    and `end`/`end_text`, the special texts and text after the middle marker.
    """

    name: str
    prefix: str | None
    suffix: str | None
    middle: str | None
    repo_name: str | None = None
    file_sep: str | None = None
    stop: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    suffix_first: bool = False
    begin: tuple[str, ...] = ()
    header: str | None = None
    context_item: str | None = None
    end: tuple[str, ...] = ()
    end_text: str = ""

    @property
    def is_fim(self) -> bool:
        return self.prefix is not None and self.suffix is not None and self.middle is not None

    @property
    def special_texts(self) -> tuple[str, ...]:
        """Every special text of this template, for `build_prompt` to resolve to token ids.

        Generation stops at these ids; they are never matched as text in an answer
        (which texts are special there is the vocabulary's call: `LlamaVocab.special_texts`).
        """
        texts = (
            self.prefix,
            self.suffix,
            self.middle,
            self.repo_name,
            self.file_sep,
            *self.begin,
            *self.end,
            *self.stop,
        )
        return tuple(dict.fromkeys(t for t in texts if t))


#: GGUF token types (gguf.TokenType) of ordinary text pieces: NORMAL, BYTE
_ORDINARY_TOKEN_TYPES = (1, 6)

FIM_TEMPLATES: dict[str, FimTemplate] = {}
_REGISTRY_LOCK = threading.Lock()


def register_template(template: FimTemplate) -> None:
    """Add (or replace) a template in the registry."""
    with _REGISTRY_LOCK:
        FIM_TEMPLATES[template.name] = template


def get_template(name: str) -> FimTemplate:
    try:
        return FIM_TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(FIM_TEMPLATES))
        raise KeyError(f"unknown FIM template {name!r}; known: {known}") from None


register_template(
    FimTemplate(
        name="qwen2.5-coder",
        prefix="<|fim_prefix|>",
        suffix="<|fim_suffix|>",
        middle="<|fim_middle|>",
        repo_name="<|repo_name|>",
        file_sep="<|file_sep|>",
        stop=("<|endoftext|>", "<|fim_pad|>", "<|im_end|>", "<|im_start|>"),
        families=("qwen2.5-coder", "qwen3-coder", "qwen3", "qwen2.5"),
    )
)
register_template(
    FimTemplate(
        name="deepseek-coder",
        prefix="<｜fim▁begin｜>",
        suffix="<｜fim▁hole｜>",
        middle="<｜fim▁end｜>",
        stop=("<｜end▁of▁sentence｜>", "<|EOT|>"),
        families=("deepseek-coder", "deepseek-coder-v2"),
    )
)
register_template(
    FimTemplate(
        name="starcoder",
        prefix="<fim_prefix>",
        suffix="<fim_suffix>",
        middle="<fim_middle>",
        repo_name="<repo_name>",
        file_sep="<file_sep>",
        stop=("<|endoftext|>", "<fim_pad>"),
        families=("starcoder", "starcoder2"),
    )
)
# CodeGeeX4-ALL-9B (THUDM/CodeGeeX4 guides/Infilling_guideline.md): a user turn holding
# ###PATH / ###LANGUAGE / ###MODE lines (other files as ###REFERENCE blocks first), then
# <|code_suffix|>S<|code_prefix|>P<|code_middle|>, then the assistant turn's opening.
# llama.cpp reads <|code_prefix|>/<|code_suffix|>/<|code_middle|> as the FIM tokens.
register_template(
    FimTemplate(
        name="codegeex4",
        prefix="<|code_prefix|>",
        suffix="<|code_suffix|>",
        middle="<|code_middle|>",
        stop=("<|endoftext|>", "<|user|>", "<|observation|>", "<|assistant|>"),
        families=("codegeex4",),
        suffix_first=True,
        begin=("[gMASK]", "<sop>", "<|user|>"),
        header="\n{context}###PATH:{path}\n###LANGUAGE:{language}\n###MODE:{mode}\n",
        context_item="###REFERENCE:\n###PATH:{path}\n{code}\n",
        end=("<|assistant|>",),
        end_text="\n",
    )
)
register_template(
    FimTemplate(
        name="prefix-only",
        prefix=None,
        suffix=None,
        middle=None,
        stop=("<|endoftext|>", "<|im_end|>", "<|im_start|>", "</s>"),
        families=("llama",),
    )
)

#: Line comment markers used to label other files' chunks when a family has no file tokens.
_COMMENT_BY_LANGUAGE: dict[str, str] = {
    "python": "#",
    "ruby": "#",
    "shellscript": "#",
    "bash": "#",
    "sh": "#",
    "perl": "#",
    "r": "#",
    "yaml": "#",
    "toml": "#",
    "dockerfile": "#",
    "makefile": "#",
    "elixir": "#",
    "julia": "#",
    "lua": "--",
    "sql": "--",
    "haskell": "--",
    "html": "<!--",
    "xml": "<!--",
    "markdown": "<!--",
}


#: LSP language ids -> the ###LANGUAGE: names CodeGeeX4 was trained with (its guide: the
#: language's name, capitalised; blank when unknown)
_CODEGEEX_LANGUAGES: dict[str, str] = {
    "c": "C",
    "cpp": "C++",
    "csharp": "C#",
    "cuda-cpp": "Cuda",
    "dart": "Dart",
    "go": "Go",
    "haskell": "Haskell",
    "html": "HTML",
    "java": "Java",
    "javascript": "JavaScript",
    "javascriptreact": "JavaScript",
    "json": "JSON",
    "kotlin": "Kotlin",
    "lua": "Lua",
    "markdown": "Markdown",
    "objective-cpp": "Objective-C++",
    "pascal": "Pascal",
    "php": "PHP",
    "python": "Python",
    "r": "R",
    "ruby": "Ruby",
    "rust": "Rust",
    "scala": "Scala",
    "shellscript": "Shell",
    "sql": "SQL",
    "swift": "Swift",
    "latex": "TeX",
    "tex": "TeX",
    "plaintext": "Text",
    "typescript": "TypeScript",
    "typescriptreact": "TypeScript",
    "vue": "Vue",
    "xml": "XML",
}


def _fill(template: str, values: dict[str, str]) -> str:
    """`template` with each `{name}` replaced once (inserted text is never scanned again)."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def comment_marker(language: str | None, filename: str | None = None) -> str:
    """The line-comment marker for a language id (or a file name's extension)."""
    if language and language.lower() in _COMMENT_BY_LANGUAGE:
        return _COMMENT_BY_LANGUAGE[language.lower()]
    if filename:
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if ext in {"py", "rb", "sh", "pl", "r", "yaml", "yml", "toml"}:
            return "#"
        if ext in {"lua", "sql", "hs"}:
            return "--"
    return "//"


class Tokenizer(Protocol):
    """What prompt assembly needs from a vocabulary."""

    add_bos: bool
    bos_id: int | None

    def tokenize(self, text: str) -> list[int]:
        """Plain text to ids: no BOS, special-token texts *not* parsed as specials."""
        ...

    def token_id(self, text: str) -> int | None:
        """The id of a special token given its text, or None if the vocabulary lacks it."""
        ...


class LlamaVocab:
    """`Tokenizer` over a loaded llama.cpp model's vocabulary (thread-safe reads)."""

    def __init__(self, llama: llama_cpp.Llama) -> None:
        import llama_cpp as lc

        self._lc = lc
        self._llama = llama
        self.vocab = lc.llama_model_get_vocab(llama._model.model)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        bos = int(lc.llama_vocab_bos(self.vocab))
        self.bos_id = bos if bos >= 0 else None
        self._special_cache: dict[str, int | None] = {}
        self._special_texts: tuple[str, ...] | None = None
        self._token_types: list[object] | None = None
        self._token_types_read = False

    def tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def token_text(self, token: int) -> str:
        raw = self._lc.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def token_id(self, text: str) -> int | None:
        if text in self._special_cache:
            return self._special_cache[text]
        found: int | None = None
        ids = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if len(ids) == 1 and self.token_text(ids[0]) == text:
            found = int(ids[0])
        self._special_cache[text] = found
        return found

    def fim_ids(self) -> dict[str, int | None]:
        """The vocabulary's own FIM ids (GGUF `tokenizer.ggml.fim_*` or llama.cpp's detection)."""
        lc = self._lc
        out: dict[str, int | None] = {}
        for key, fn in (
            ("pre", lc.llama_vocab_fim_pre),
            ("suf", lc.llama_vocab_fim_suf),
            ("mid", lc.llama_vocab_fim_mid),
            ("pad", lc.llama_vocab_fim_pad),
            ("rep", lc.llama_vocab_fim_rep),
            ("sep", lc.llama_vocab_fim_sep),
        ):
            value = int(fn(self.vocab))
            out[key] = value if 0 <= value < self.n_vocab else None
        return out

    def is_eog(self, token: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self.vocab, token))

    def is_control(self, token: int) -> bool:
        return bool(self._lc.llama_vocab_is_control(self.vocab, token))

    def is_special_text(self, text: str) -> bool:
        """True if `text` is one special token of this vocabulary.

        That is: parsing specials, it tokenizes to a single token that llama.cpp
        marks CONTROL, and the GGUF does not declare that token an ordinary piece of
        text. llama.cpp also marks tokens CONTROL by their text alone (end-of-generation
        and FIM look-alikes): Qwen2.5's vocabulary has `</s>` as an ordinary token
        (id 128247) that llama.cpp promotes, yet in HTML it is a tag. `</s>` is special
        in a Llama-2 vocabulary, which declares it so.
        """
        if not text.strip():
            return False
        ids = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return len(ids) == 1 and self._is_special_token(int(ids[0]))

    def _is_special_token(self, token: int) -> bool:
        if not self.is_control(token):
            return False
        declared = self._declared_types()
        return declared is None or declared[token] not in _ORDINARY_TOKEN_TYPES

    def _declared_types(self) -> list[object] | None:
        """The token types the GGUF file declares (None when it cannot tell: llama.cpp's word)."""
        if not self._token_types_read:
            types: list[object] | None = None
            path = getattr(self._llama, "model_path", None)
            if path:
                try:
                    types = read_metadata_array(path, "tokenizer.ggml.token_type")
                except ModelFileError:
                    types = None
            self._token_types = types if types is not None and len(types) == self.n_vocab else None
            self._token_types_read = True
        return self._token_types

    def special_texts(self) -> tuple[str, ...]:
        """The texts of all the vocabulary's special tokens (see `is_special_text`), in id order.

        Read once per vocabulary and cached: a scan of the token attributes and of the
        GGUF's declared token types (~60 ms for SmolLM2's 49k tokens). The completion
        filters cut an answer only at these texts.
        """
        if self._special_texts is None:
            found: dict[str, None] = {}  # ordered and unique
            for token in range(self.n_vocab):
                if not self._is_special_token(token):
                    continue
                text = self.token_text(token)
                if text not in found and self.is_special_text(text):
                    found[text] = None
            self._special_texts = tuple(found)
        return self._special_texts

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (specials rendered as their text)."""
        buf = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]


def _template_present(tokenizer: Tokenizer, template: FimTemplate) -> bool:
    if not template.is_fim:
        return False
    return all(
        tokenizer.token_id(t) is not None
        for t in (template.prefix, template.suffix, template.middle)
    )


def detect_template(
    tokenizer: Tokenizer | llama_cpp.Llama, family: str | None = None
) -> FimTemplate:
    """Pick the FIM template the model's vocabulary supports.

    Order: the vocabulary's declared FIM ids (matched to a registered template by
    their texts; an unknown family's texts become a template of their own), then
    the family hint, then any registered template whose tokens all exist, then
    prefix-only.
    """
    vocab = tokenizer if hasattr(tokenizer, "token_id") else LlamaVocab(tokenizer)  # type: ignore[arg-type]
    declared: dict[str, int | None] = vocab.fim_ids() if hasattr(vocab, "fim_ids") else {}
    if (
        declared.get("pre") is not None
        and declared.get("suf") is not None
        and declared.get("mid") is not None
    ):
        texts = {k: vocab.token_text(v) for k, v in declared.items() if v is not None}  # type: ignore[attr-defined]
        for template in FIM_TEMPLATES.values():
            if (template.prefix, template.suffix, template.middle) == (
                texts["pre"],
                texts["suf"],
                texts["mid"],
            ):
                return template
        return FimTemplate(
            name=f"vocab:{texts['pre']}",
            prefix=texts["pre"],
            suffix=texts["suf"],
            middle=texts["mid"],
            repo_name=texts.get("rep"),
            file_sep=texts.get("sep"),
            stop=tuple(t for t in (texts.get("pad"),) if t),
        )
    if family:
        for template in FIM_TEMPLATES.values():
            if family in template.families and _template_present(vocab, template):
                return template
    for template in FIM_TEMPLATES.values():
        if _template_present(vocab, template):
            return template
    return FIM_TEMPLATES["prefix-only"]


@dataclass(frozen=True)
class PromptLimits:
    """How much of the document goes into a prompt (llama.vscode's n_prefix/n_suffix lines)."""

    prefix_lines: int = 256
    #: the prefix window's start moves in steps of this many lines, so it stays put while typing
    prefix_step: int = 64
    prefix_chars: int = 12_000
    prefix_chars_step: int = 2_048
    suffix_lines: int = 32
    suffix_chars: int = 2_000
    context_chars: int = 8_000


def window_prefix(prefix: str, limits: PromptLimits) -> str:
    """The tail of `prefix` to use; its first line moves only every `prefix_step` lines.

    A tail cut at a line keeps that line's leading line break: its first line is then
    tokenized as it is inside the file ("\\n" and the indentation), so when the tail moves
    down a line, the lines it shares with the cached one are the same tokens, which the
    KV cache can shift into place instead of evaluating them again (engine/completion/
    kv_shift.py).
    """
    lines = prefix.split("\n")
    n = len(lines)
    cut_lines = False
    if n > limits.prefix_lines:
        step = max(1, limits.prefix_step)
        start = n - limits.prefix_lines
        start = ((start + step - 1) // step) * step
        lines = lines[start:]
        cut_lines = start > 0
    text = ("\n" if cut_lines else "") + "\n".join(lines)
    if len(text) > limits.prefix_chars:
        # Cut in steps too (relative to the text's start), then at the next line break.
        step = max(1, limits.prefix_chars_step)
        cut = -(-(len(text) - limits.prefix_chars) // step) * step
        nl = text.find("\n", cut)
        text = text[nl:] if 0 <= nl < len(text) - 1 else text[cut:]
    return text


def window_suffix(suffix: str, limits: PromptLimits) -> str:
    """The head of `suffix`: at most `suffix_lines` lines and `suffix_chars` characters."""
    parts = suffix.split("\n", limits.suffix_lines)
    text = "\n".join(parts[: limits.suffix_lines])
    return text[: limits.suffix_chars]


@dataclass
class FimPrompt:
    """A prompt as token ids, plus what the engine needs to reason about it."""

    tokens: list[int]
    template: str
    #: ids that end generation and never appear in an answer (this template's specials found in
    #: the vocabulary; the engine stops at every CONTROL token as well)
    stop_ids: frozenset[int] = field(default_factory=frozenset)
    prefix_text: str = ""
    suffix_text: str = ""


def _context_text(chunks: Sequence[ContextChunk], budget: int) -> list[ContextChunk]:
    """The newest chunks that fit `budget` characters, kept in their (stable) ring order."""
    kept: list[ContextChunk] = []
    used = 0
    for chunk in reversed(chunks):
        if used + len(chunk.text) > budget:
            break
        kept.append(chunk)
        used += len(chunk.text)
    kept.reverse()
    return kept


def build_prompt(
    tokenizer: Tokenizer,
    template: FimTemplate,
    *,
    prefix: str,
    suffix: str = "",
    filename: str | None = None,
    language: str | None = None,
    extra_context: Sequence[ContextChunk] = (),
    repo_name: str | None = None,
    limits: PromptLimits | None = None,
    multiline: bool | None = None,
) -> FimPrompt:
    """Assemble the token ids of a completion prompt for `template`.

    Layout (prefix-stable — everything that changes while typing is at the end):

    - Qwen2.5-Coder / StarCoder2 with context: `<|repo_name|>R\\n<|file_sep|>a.py\\n…` for each
      chunk, `<|file_sep|>current.py\\n`, then `<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>`.
    - families without file tokens (DeepSeek-Coder): chunks as `# a.py` comment-headed text at the
      start of the prefix segment.
    - prefix-only: BOS (if the vocabulary wants one), comment-headed chunks, then the prefix.
    - CodeGeeX4 (a `header` template): `[gMASK]<sop><|user|>` and the header (other files as
      ###REFERENCE blocks, then ###PATH/###LANGUAGE/###MODE — LINE when `multiline` is
      False), `<|code_suffix|>S<|code_prefix|>P<|code_middle|><|assistant|>\\n`.
    """
    limits = limits or PromptLimits()
    prefix_text = window_prefix(prefix, limits)
    suffix_text = window_suffix(suffix, limits) if template.is_fim else ""
    chunks = _context_text(extra_context, limits.context_chars)

    def special(text: str | None) -> int | None:
        return tokenizer.token_id(text) if text else None

    tokens: list[int] = []
    if tokenizer.add_bos and tokenizer.bos_id is not None:
        tokens.append(tokenizer.bos_id)

    if template.header is not None:
        return _build_chat_fim(
            tokenizer,
            template,
            tokens,
            prefix_text=prefix_text,
            suffix_text=suffix_text,
            chunks=chunks,
            filename=filename,
            language=language,
            multiline=multiline,
        )

    file_sep = special(template.file_sep)
    repo = special(template.repo_name)
    use_file_tokens = template.is_fim and file_sep is not None and bool(chunks)
    lead_text = ""  # comment-headed context for families without file tokens
    if use_file_tokens:
        assert file_sep is not None
        if repo is not None:
            tokens.append(repo)
            tokens += tokenizer.tokenize(f"{repo_name or 'workspace'}\n")
        for chunk in chunks:
            tokens.append(file_sep)
            tokens += tokenizer.tokenize(f"{chunk.filename}\n{chunk.text.rstrip()}\n")
        tokens.append(file_sep)
        tokens += tokenizer.tokenize(f"{filename or 'untitled'}\n")
    elif chunks:
        mark = comment_marker(language, filename)
        end = " -->" if mark == "<!--" else ""
        parts = [f"{mark} {c.filename}{end}\n{c.text.rstrip()}\n\n" for c in chunks]
        if filename:
            parts.append(f"{mark} {filename}{end}\n")
        lead_text = "".join(parts)

    if template.is_fim:
        pre, suf, mid = special(template.prefix), special(template.suffix), special(template.middle)
        if pre is None or suf is None or mid is None:
            raise ValueError(f"the model's vocabulary lacks the {template.name} FIM tokens")
        tokens.append(pre)
        if lead_text:
            tokens += tokenizer.tokenize(lead_text)
        tokens += tokenizer.tokenize(prefix_text)
        tokens.append(suf)
        tokens += tokenizer.tokenize(suffix_text)
        tokens.append(mid)
    else:
        if lead_text:
            tokens += tokenizer.tokenize(lead_text)
        tokens += tokenizer.tokenize(prefix_text)

    stop_ids = frozenset(i for i in (special(t) for t in template.special_texts) if i is not None)
    return FimPrompt(tokens, template.name, stop_ids, prefix_text, suffix_text)


def _build_chat_fim(
    tokenizer: Tokenizer,
    template: FimTemplate,
    tokens: list[int],
    *,
    prefix_text: str,
    suffix_text: str,
    chunks: Sequence[ContextChunk],
    filename: str | None,
    language: str | None,
    multiline: bool | None,
) -> FimPrompt:
    """A FIM prompt that is a chat turn (CodeGeeX4): specials as ids, the rest as text."""

    def special(text: str) -> int:
        found = tokenizer.token_id(text)
        if found is None:
            raise ValueError(f"the model's vocabulary lacks {text!r} ({template.name} FIM)")
        return found

    assert template.header is not None and template.is_fim
    context = "".join(
        _fill(template.context_item or "", {"path": c.filename, "code": c.text.rstrip()})
        for c in chunks
    )
    header = _fill(
        template.header,
        {
            "context": context,
            "path": filename or "",
            "language": _CODEGEEX_LANGUAGES.get((language or "").lower(), ""),
            "mode": "LINE" if multiline is False else "BLOCK",
        },
    )
    tokens += [special(t) for t in template.begin]
    tokens += tokenizer.tokenize(header)
    pre, suf, mid = (
        special(template.prefix or ""),
        special(template.suffix or ""),
        special(template.middle or ""),
    )
    body = (
        [(suf, suffix_text), (pre, prefix_text)]
        if template.suffix_first
        else [(pre, prefix_text), (suf, suffix_text)]
    )
    for marker, text in body:
        tokens.append(marker)
        tokens += tokenizer.tokenize(text)
    tokens.append(mid)
    tokens += [special(t) for t in template.end]
    tokens += tokenizer.tokenize(template.end_text)
    # <|user|> opens the prompt and also ends an answer (the next turn's marker)
    ids = (tokenizer.token_id(t) for t in template.special_texts)
    stop_ids = frozenset(i for i in ids if i is not None)
    return FimPrompt(tokens, template.name, stop_ids, prefix_text, suffix_text)
