"""FIM templates: the registry, detection from real GGUF vocabularies, prompts as token ids."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from hanlin.engine.completion.context_ring import ContextChunk
from hanlin.engine.completion.fim import (
    FIM_TEMPLATES,
    FimTemplate,
    LlamaVocab,
    PromptLimits,
    build_prompt,
    detect_template,
    get_template,
    register_template,
    window_prefix,
    window_suffix,
)
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf


def _vocab(path: Path) -> LlamaVocab:
    """Load only the vocabulary, with llama.cpp's log routed like the product does
    (never `verbose=False`, whose fd redirection the house rules forbid)."""
    import llama_cpp

    from hanlin.engine.runtime.llama_log import ensure_llama_logs_routed

    ensure_llama_logs_routed()
    return LlamaVocab(llama_cpp.Llama(str(path), vocab_only=True, verbose=True))


@pytest.fixture(scope="module")
def qwen_vocab(tmp_path_factory: pytest.TempPathFactory) -> LlamaVocab:
    path = write_tiny_fim_gguf(tmp_path_factory.mktemp("fim") / "tiny-qwen.gguf", "qwen2.5-coder")
    return _vocab(path)


@pytest.fixture(scope="module")
def codegeex_vocab(tmp_path_factory: pytest.TempPathFactory) -> LlamaVocab:
    path = write_tiny_fim_gguf(tmp_path_factory.mktemp("fim") / "tiny-cg.gguf", "codegeex4")
    return _vocab(path)


@pytest.fixture(scope="module")
def deepseek_vocab(tmp_path_factory: pytest.TempPathFactory) -> LlamaVocab:
    path = write_tiny_fim_gguf(tmp_path_factory.mktemp("fim") / "tiny-ds.gguf", "deepseek-coder")
    return _vocab(path)


def _sdist_vocab(name: str, dest: Path) -> Path:
    """Extract a vocab-only GGUF from the installed llama-cpp-python's sdist.

    The sdist is fetched from PyPI into `.bench-cache/` (git-ignored) when this machine
    has none, so the test runs on a fresh machine too instead of skipping.
    """
    from bench.llama_tools import ensure_sdist

    sdist = ensure_sdist()
    with tarfile.open(sdist) as tar:
        member = next((m for m in tar if m.name.endswith(f"vendor/llama.cpp/models/{name}")), None)
        assert member is not None, f"{sdist} has no vendor/llama.cpp/models/{name}"
        tar.extract(member, dest, filter="data")
    return dest / member.name


def test_registry_has_the_five_families_and_accepts_new_ones() -> None:
    assert {"qwen2.5-coder", "deepseek-coder", "starcoder", "codegeex4", "prefix-only"} <= set(
        FIM_TEMPLATES
    )
    qwen = get_template("qwen2.5-coder")
    assert (qwen.prefix, qwen.suffix, qwen.middle) == (
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    )
    assert qwen.file_sep == "<|file_sep|>" and qwen.repo_name == "<|repo_name|>"
    assert get_template("deepseek-coder").prefix == "<｜fim▁begin｜>"
    assert get_template("starcoder").middle == "<fim_middle>"
    assert not get_template("prefix-only").is_fim
    codellama = FimTemplate("codellama-test", "▁<PRE>", "▁<SUF>", "▁<MID>", stop=("▁<EOT>",))
    register_template(codellama)
    try:
        assert get_template("codellama-test") is codellama
    finally:
        del FIM_TEMPLATES["codellama-test"]
    with pytest.raises(KeyError, match="unknown FIM template"):
        get_template("nope")


def test_detects_qwen_from_the_vocabulary(qwen_vocab: LlamaVocab) -> None:
    ids = qwen_vocab.fim_ids()
    assert ids["pre"] == qwen_vocab.token_id("<|fim_prefix|>")
    assert ids["sep"] == qwen_vocab.token_id("<|file_sep|>")
    # the family hint must not override what the vocabulary says
    assert detect_template(qwen_vocab, family="deepseek-coder").name == "qwen2.5-coder"


def test_detects_deepseek_from_the_vocabulary(deepseek_vocab: LlamaVocab) -> None:
    assert detect_template(deepseek_vocab).name == "deepseek-coder"
    assert deepseek_vocab.add_bos


def test_smollm2_has_no_fim_tokens_and_gets_prefix_only(smollm2_path: Path) -> None:

    vocab = _vocab(smollm2_path)
    assert vocab.fim_ids()["pre"] is None
    assert detect_template(vocab, family="llama").name == "prefix-only"


@pytest.mark.slow  # the first run on a machine downloads the sdist (about a minute)
@pytest.mark.timeout(900)
def test_real_deepseek_coder_vocabulary_from_the_sdist(tmp_path: Path) -> None:
    vocab = _vocab(_sdist_vocab("ggml-vocab-deepseek-coder.gguf", tmp_path))
    ids = vocab.fim_ids()
    assert (ids["pre"], ids["suf"], ids["mid"]) == (32016, 32015, 32017)
    template = detect_template(vocab)
    assert template.name == "deepseek-coder"
    prompt = build_prompt(vocab, template, prefix="def add(a, b):\n    return ", suffix="\n")
    assert prompt.tokens[1] == 32016 and prompt.tokens[-1] == 32017
    assert 32015 in prompt.tokens


def test_qwen_prompt_layout_with_repo_context(qwen_vocab: LlamaVocab) -> None:
    template = get_template("qwen2.5-coder")
    chunks = [
        ContextChunk("src/models.py", "class User:\n    name: str\n"),
        ContextChunk("src/db.py", "import sqlite3\n"),
    ]
    prompt = build_prompt(
        qwen_vocab,
        template,
        prefix="def greet(u):\n    return ",
        suffix="\n\nprint(greet(None))\n",
        filename="src/app.py",
        extra_context=chunks,
        repo_name="shop",
    )
    t = prompt.tokens
    pre, suf, mid = (
        qwen_vocab.token_id(x) for x in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    )
    repo, sep = qwen_vocab.token_id("<|repo_name|>"), qwen_vocab.token_id("<|file_sep|>")
    assert t[0] == repo
    assert t.count(sep) == 3  # two context files + the current one
    assert t.count(pre) == t.count(suf) == t.count(mid) == 1
    assert t.index(sep) < t.index(pre) < t.index(suf) < t.index(mid) == len(t) - 1
    text = _detok(qwen_vocab, t)
    assert text == (
        "<|repo_name|>shop\n<|file_sep|>src/models.py\nclass User:\n    name: str\n"
        "<|file_sep|>src/db.py\nimport sqlite3\n<|file_sep|>src/app.py\n"
        "<|fim_prefix|>def greet(u):\n    return "
        "<|fim_suffix|>\n\nprint(greet(None))\n<|fim_middle|>"
    )
    assert {pre, suf, mid, repo, sep} <= prompt.stop_ids


def _detok(vocab: LlamaVocab, tokens: list[int]) -> str:
    return b"".join(vocab.piece(t) for t in tokens).decode("utf-8")


def test_special_token_text_in_the_document_is_not_a_special_token(qwen_vocab: LlamaVocab) -> None:
    template = get_template("qwen2.5-coder")
    doc = 'MARK = "<|fim_prefix|>"\n'
    prompt = build_prompt(qwen_vocab, template, prefix=doc, suffix="")
    pre = qwen_vocab.token_id("<|fim_prefix|>")
    assert prompt.tokens.count(pre) == 1
    assert _detok(qwen_vocab, prompt.tokens).startswith("<|fim_prefix|>" + doc)


def _fixture_vocabulary(name: str) -> tuple[str, ...]:
    """A vocabulary's special texts as the fixtures claim them (fixtures/vocabularies.toml)."""
    import tomllib

    data = tomllib.loads((Path(__file__).parent / "fixtures" / "vocabularies.toml").read_text())
    return tuple(data[name])


@pytest.mark.parametrize("family", ["qwen2.5-coder", "deepseek-coder"])
def test_special_texts_are_the_vocabularys_control_tokens(
    family: str, qwen_vocab: LlamaVocab, deepseek_vocab: LlamaVocab
) -> None:
    vocab = qwen_vocab if family == "qwen2.5-coder" else deepseek_vocab
    specials = vocab.special_texts()
    assert specials == _fixture_vocabulary(family)
    assert all(vocab.is_special_text(t) for t in specials)
    for ordinary in ("</s>", "<s>", "<|fim_prefix|>x", "<｜fim▁end｜> ", "", "Vec<T>", "def"):
        assert not vocab.is_special_text(ordinary), ordinary


def test_an_ordinary_token_llama_cpp_promotes_to_control_is_not_special(tmp_path: Path) -> None:
    """Qwen2.5's vocabulary has `</s>` as an ordinary token (id 128247); llama.cpp marks it
    CONTROL at load because of its text. The GGUF's own token type decides: HTML survives."""
    path = write_tiny_fim_gguf(tmp_path / "qwen-s.gguf", extra_normal_tokens=("</s>",))
    vocab = _vocab(path)
    (closing_s,) = vocab._llama.tokenize(b"</s>", add_bos=False, special=True)
    assert vocab.is_control(closing_s)  # llama.cpp's override, the premise of this test
    assert not vocab.is_special_text("</s>")
    assert vocab.special_texts() == _fixture_vocabulary("qwen2.5-coder")
    assert vocab.is_special_text("<|endoftext|>")


@pytest.mark.slow  # the first run on a machine downloads the sdist (about a minute)
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("name", "vocabulary", "closing_s_is_special"),
    [("ggml-vocab-qwen2.gguf", "qwen2", False), ("ggml-vocab-llama-spm.gguf", "llama-2", True)],
)
def test_real_vocabularies_decide_whether_closing_s_is_special(
    name: str, vocabulary: str, closing_s_is_special: bool, tmp_path: Path
) -> None:
    """Real Qwen2 (the BPE vocabulary of Qwen2.5/Qwen3): `</s>` is ordinary token 128247, which
    llama.cpp marks CONTROL; real Llama-2: `</s>` is its declared end-of-sentence token."""
    vocab = _vocab(_sdist_vocab(name, tmp_path))
    (closing_s,) = vocab._llama.tokenize(b"</s>", add_bos=False, special=True)
    assert vocab.is_control(closing_s)
    assert vocab.is_special_text("</s>") is closing_s_is_special
    assert vocab.special_texts() == _fixture_vocabulary(vocabulary)


def test_smollm2_special_texts_hold_no_html_tags(smollm2_path: Path) -> None:
    vocab = _vocab(smollm2_path)
    specials = vocab.special_texts()
    assert specials == _fixture_vocabulary("smollm2")
    assert "<|endoftext|>" in specials and "<file_sep>" in specials
    assert not {"<s>", "</s>"} & set(specials)
    assert not vocab.is_special_text("</s>")


def test_deepseek_prompt_puts_context_as_comments_after_bos(deepseek_vocab: LlamaVocab) -> None:
    template = get_template("deepseek-coder")
    prompt = build_prompt(
        deepseek_vocab,
        template,
        prefix="x = ",
        suffix="\n",
        filename="main.py",
        language="python",
        extra_context=[ContextChunk("util.py", "def helper():\n    return 1\n")],
    )
    assert prompt.tokens[0] == deepseek_vocab.bos_id
    text = _detok(deepseek_vocab, prompt.tokens[1:])
    assert (
        text == "<｜fim▁begin｜># util.py\ndef helper():\n    return 1\n\n"
        "# main.py\nx = <｜fim▁hole｜>\n<｜fim▁end｜>"
    )


def test_prefix_only_prompt_is_just_the_text(smollm2_path: Path) -> None:

    vocab = _vocab(smollm2_path)
    prompt = build_prompt(
        vocab,
        get_template("prefix-only"),
        prefix="import os\n\ndef main():\n    ",
        suffix="\nmain()\n",
    )
    text = _detok(vocab, [t for t in prompt.tokens if t != vocab.bos_id])
    assert text == "import os\n\ndef main():\n    "
    assert prompt.suffix_text == ""


def test_a_keystroke_changes_only_the_tail_of_the_prompt(qwen_vocab: LlamaVocab) -> None:
    template = get_template("qwen2.5-coder")
    chunks = [ContextChunk("a.py", "A = 1\n")]
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(40))
    p1 = build_prompt(
        qwen_vocab, template, prefix=body + "def g(x):\n    ret", suffix="\n", extra_context=chunks
    )
    p2 = build_prompt(
        qwen_vocab, template, prefix=body + "def g(x):\n    retu", suffix="\n", extra_context=chunks
    )
    common = 0
    for a, b in zip(p1.tokens, p2.tokens, strict=False):
        if a != b:
            break
        common += 1
    assert len(p1.tokens) > 300
    assert len(p2.tokens) - common <= 8


def test_prefix_window_moves_in_steps() -> None:
    limits = PromptLimits(prefix_lines=100, prefix_step=32)
    lines = [f"line {i}" for i in range(300)]
    starts = set()
    for n in range(200, 232):
        text = window_prefix("\n".join(lines[:n]), limits)
        # a cut tail keeps its first line's line break (tokenized as inside the file)
        assert text.startswith("\nline ")
        body = text[1:]
        starts.add(body.split("\n", 1)[0])
        assert len(body.split("\n")) <= 100
    assert len(starts) <= 2  # 32 keystroke-lines, at most one jump
    assert window_prefix("short\nfile", limits) == "short\nfile"


def test_prefix_window_caps_characters_at_a_line_boundary() -> None:
    limits = PromptLimits(prefix_chars=50, prefix_chars_step=30)
    text = window_prefix("\n".join("x" * 20 for _ in range(10)), limits)
    assert len(text) <= 50 and text.startswith("\n" + "x" * 20)
    # while typing on the last line the cut stays put until the next step
    limits = PromptLimits(prefix_chars=100, prefix_chars_step=30)
    firsts = set()
    for extra in range(0, 25):
        doc = "\n".join(f"{i:02d}" + "x" * 8 for i in range(30)) + "y" * extra
        text = window_prefix(doc, limits)
        assert text.startswith("\n")
        firsts.add(text[1:].split("\n", 1)[0])
    assert len(firsts) <= 2


def test_suffix_window() -> None:
    limits = PromptLimits(suffix_lines=2, suffix_chars=1000)
    assert window_suffix("a\nb\nc\nd", limits) == "a\nb"
    assert window_suffix("y" * 5000, PromptLimits(suffix_chars=100)) == "y" * 100


# CodeGeeX4-ALL-9B's infilling format (THUDM/CodeGeeX4 guides/Infilling_guideline.md):
#   <|user|>\n###PATH:{path}\n###LANGUAGE:{lang}\n###MODE:{LINE/BLOCK}\n
#   <|code_suffix|>{suffix}<|code_prefix|>{prefix}<|code_middle|><|assistant|>\n
# behind GLM-4's [gMASK]<sop> prefix, other files as ###REFERENCE blocks first.


def test_detects_codegeex4_from_the_vocabulary(codegeex_vocab: LlamaVocab) -> None:
    ids = codegeex_vocab.fim_ids()
    assert ids["pre"] == codegeex_vocab.token_id("<|code_prefix|>")
    assert ids["suf"] == codegeex_vocab.token_id("<|code_suffix|>")
    assert ids["mid"] == codegeex_vocab.token_id("<|code_middle|>")
    assert detect_template(codegeex_vocab).name == "codegeex4"
    assert detect_template(codegeex_vocab, family="qwen2.5-coder").name == "codegeex4"


def test_codegeex4_is_found_by_token_text_without_declared_fim_ids(tmp_path: Path) -> None:
    """THUDM's 2024 GGUFs have no tokenizer.ggml.fim_* keys: llama.cpp finds the tokens."""
    path = write_tiny_fim_gguf(tmp_path / "cg-plain.gguf", "codegeex4", declare_fim=False)
    from hanlin.engine.models.gguf_info import read_gguf_info

    assert read_gguf_info(path).fim_pre_id is None
    vocab = _vocab(path)
    assert vocab.fim_ids()["pre"] == vocab.token_id("<|code_prefix|>")
    assert detect_template(vocab, family="codegeex4").name == "codegeex4"


def test_codegeex4_prompt_is_a_chat_turn_with_the_suffix_first(
    codegeex_vocab: LlamaVocab,
) -> None:
    template = detect_template(codegeex_vocab)
    prompt = build_prompt(
        codegeex_vocab,
        template,
        prefix="def area(r):\n    return ",
        suffix="\n\nprint(area(2))\n",
        filename="geo/circle.py",
        language="python",
    )
    assert _detok(codegeex_vocab, prompt.tokens) == (
        "[gMASK]<sop><|user|>\n###PATH:geo/circle.py\n###LANGUAGE:Python\n###MODE:BLOCK\n"
        "<|code_suffix|>\n\nprint(area(2))\n"
        "<|code_prefix|>def area(r):\n    return "
        "<|code_middle|><|assistant|>\n"
    )
    t = prompt.tokens
    ids = {x: codegeex_vocab.token_id(x) for x in template.special_texts}
    # every marker is one special id, never text the tokenizer split up
    assert t[:3] == [ids["[gMASK]"], ids["<sop>"], ids["<|user|>"]]
    assert t.index(ids["<|code_suffix|>"]) < t.index(ids["<|code_prefix|>"])
    assert t.index(ids["<|code_prefix|>"]) < t.index(ids["<|code_middle|>"])
    assert t[-2] == ids["<|assistant|>"]
    # an answer ends at the next turn's marker or the end of text
    assert {ids["<|user|>"], ids["<|endoftext|>"], ids["<|observation|>"]} <= prompt.stop_ids
    assert prompt.prefix_text == "def area(r):\n    return "


def test_codegeex4_prompt_with_other_files_and_line_mode(codegeex_vocab: LlamaVocab) -> None:
    template = get_template("codegeex4")
    prompt = build_prompt(
        codegeex_vocab,
        template,
        prefix="total = ",
        suffix="",
        filename="app.ts",
        language="typescript",
        extra_context=[ContextChunk("lib/{path}.ts", "export const {code} = 1;\n")],
        multiline=False,
    )
    text = _detok(codegeex_vocab, prompt.tokens)
    # braces in file names and code are kept as written, not taken for placeholders
    assert text == (
        "[gMASK]<sop><|user|>\n###REFERENCE:\n###PATH:lib/{path}.ts\nexport const {code} = 1;\n"
        "###PATH:app.ts\n###LANGUAGE:TypeScript\n###MODE:LINE\n"
        "<|code_suffix|><|code_prefix|>total = <|code_middle|><|assistant|>\n"
    )
    unknown = build_prompt(codegeex_vocab, template, prefix="x", language="cobol")
    assert "###LANGUAGE:\n" in _detok(codegeex_vocab, unknown.tokens)


def test_codegeex4_prompt_is_prefix_stable_while_typing(codegeex_vocab: LlamaVocab) -> None:
    template = get_template("codegeex4")
    args = {"suffix": "\nend\n", "filename": "a.py", "language": "python"}
    before = build_prompt(codegeex_vocab, template, prefix="x = 1\ny = ", **args).tokens
    after = build_prompt(codegeex_vocab, template, prefix="x = 1\ny = 2", **args).tokens
    common = 0
    while before[common] == after[common]:
        common += 1
    # only the tail after the prefix's last line changes
    assert common >= len(before) - 5
