"""The 2025-26 families: each one's real chat template, its thinking switch, and its split.

Every template here is the publisher's (or llama.cpp's vendored copy of it), kept as test
data in `templates/` (README.md there names each source). For each family the test renders
a conversation as Hanlin does (the family's template variables, the thinking of earlier
turns never sent back), checks the exact prompt the model sees, whether that prompt already
opened a reasoning block, and that a streamed reply, cut at every possible position, splits
into the right thinking and answer. The last tests run the real `ChatPrompter` and
`stream_chat` on tiny real GGUFs for what a template alone cannot show: the family's opening
`<think>` added to a template that lacks it, and GLM's format for a GGUF without a template.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.sampling import resolve_sampling
from hanlin.engine.chat.stream import ChatMessage, stream_chat
from hanlin.engine.chat.template import CHATML_TEMPLATE, ChatPrompter, render_chat_prompt
from hanlin.engine.chat.thinking import StreamEvent, ThinkSplitter, prompt_opens_thinking
from hanlin.engine.completion.fim import FIM_TEMPLATES
from hanlin.engine.models.catalog import load_catalog
from hanlin.engine.models.families import (
    GLM4_TEMPLATE,
    FamilyBehavior,
    family_for,
    guess_family,
)
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from hanlin.engine.runtime.session import StopMatcher
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

TEMPLATES = Path(__file__).with_name("templates")
R1_BOS = "<｜begin▁of▁sentence｜>"

MESSAGES = [
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello!", thinking="The user greets me."),
    ChatMessage("user", "2+2?"),
]


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(source: str, family: str, thinking: bool, *, bos: str = "", messages=MESSAGES) -> str:
    """The prompt text as ChatPrompter renders it: the family's variables, no old thinking."""
    behavior = family_for(family)
    clean = [ChatMessage(m.role, m.content) for m in messages]
    return render_chat_prompt(
        source, clean, bos_token=bos, variables=behavior.template_variables(thinking)
    )


def split_everywhere(text: str) -> list[list[str]]:
    """Token streams cutting `text` at every position, plus one-character tokens."""
    return [[text[:i], text[i:]] for i in range(1, len(text))] + [list(text)]


def split(prompt: str, chunks: list[str]) -> tuple[ThinkSplitter, list[StreamEvent]]:
    """Feed a reply the way stream_chat does: in thinking when the prompt opened it."""
    splitter = ThinkSplitter(in_thinking=prompt_opens_thinking(prompt))
    events = [e for chunk in chunks for e in splitter.feed(chunk)] + splitter.finish()
    return splitter, events


def assert_split(prompt: str, reply: str, thinking: str | None, answer: str) -> None:
    for chunks in split_everywhere(reply):
        splitter, events = split(prompt, chunks)
        assert splitter.thinking == thinking, chunks
        assert splitter.answer == answer, chunks
        shown = "".join(e.text for e in events)
        assert "<think>" not in shown and "</think>" not in shown, chunks


# ------------------------------------------------------------------ Qwen3-Instruct-2507


QWEN_HISTORY = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
)


def test_qwen3_instruct_2507_never_thinks_and_has_no_switch() -> None:
    family = family_for("qwen3-instruct-2507")
    assert not family.reasoning and not family.thinking_switch
    assert not family.thinks(True) and not family.always_thinks
    # the no_think option is a no-op: nothing changes in the prompt or the sampling
    assert family.template_variables(True) == family.template_variables(False) == {}
    real = template("unsloth-qwen3-instruct.jinja")
    assert family.soft_switch_suffix(False, real) == family.soft_switch_suffix(False, None) == ""
    assert family.forced_think_open(True) == ""
    on, off = render(real, "qwen3-instruct-2507", True), render(real, "qwen3-instruct-2507", False)
    assert on == off == QWEN_HISTORY + "<|im_start|>assistant\n"
    assert not prompt_opens_thinking(on)
    assert resolve_sampling(None, family, True) == resolve_sampling(None, family, False)
    assert resolve_sampling(None, family, False).given()["temperature"] == 0.7
    assert_split(on, "2 + 2 = 4.", None, "2 + 2 = 4.")


def test_qwen3_instruct_2507_catalog_entries_hide_the_switch() -> None:
    catalog = load_catalog()
    for entry_id in ("qwen3-4b-instruct-2507-q4km", "qwen3-30b-a3b-instruct-2507-q4km"):
        entry = catalog.get(entry_id)
        assert entry.family == "qwen3-instruct-2507"
        assert entry.sampling.no_think is None  # no thinking mode, so no second table
        assert entry.sampling.temperature == 0.7 and entry.sampling.top_p == 0.8


# ------------------------------------------------------------------ Qwen3-Thinking-2507


def test_qwen3_thinking_2507_always_thinks_and_its_template_opens_the_block() -> None:
    family = family_for("qwen3-thinking-2507")
    assert family.always_thinks and family.thinks(False)
    real = template("unsloth-qwen3-thinking.jinja")
    on, off = render(real, "qwen3-thinking-2507", True), render(real, "qwen3-thinking-2507", False)
    assert on == off == QWEN_HISTORY + "<|im_start|>assistant\n<think>\n"
    assert prompt_opens_thinking(on)
    assert "The user greets me" not in on
    # the prompter would add this only to a template that does not open the block itself
    assert family.forced_think_open(False) == "<think>\n"
    assert resolve_sampling(None, family, False).given()["temperature"] == 0.6


def test_qwen3_thinking_2507_reply_has_only_the_closing_tag() -> None:
    prompt = render(template("unsloth-qwen3-thinking.jinja"), "qwen3-thinking-2507", True)
    reply = "The user asks 2+2. That is 4.\n</think>\n\nIt is **4**."
    assert_split(prompt, reply, "The user asks 2+2. That is 4.", "It is **4**.")


def test_qwen3_thinking_2507_reply_that_opens_the_block_again() -> None:
    prompt = render(template("unsloth-qwen3-thinking.jinja"), "qwen3-thinking-2507", True)
    assert_split(prompt, "<think>\nAdd them.\n</think>\n\n4", "Add them.", "4")


def test_qwen3_2507_guessed_from_gguf_metadata() -> None:
    assert guess_family("qwen3", "Qwen3-4B-Instruct-2507") == "qwen3-instruct-2507"
    assert guess_family("qwen3moe", "Qwen3 30B A3B Instruct 2507") == "qwen3-instruct-2507"
    assert guess_family("qwen3", "Qwen3-4B-Thinking-2507") == "qwen3-thinking-2507"
    path = Path("Qwen3-30B-A3B-Thinking-2507-Q4_K_M.gguf")
    assert guess_family("qwen3moe", None, path) == "qwen3-thinking-2507"
    # the April release keeps its switch; the coder keeps its family
    assert guess_family("qwen3", "Qwen3 4B") == "qwen3"
    assert guess_family("qwen3moe", "Qwen3-Coder-30B-A3B-Instruct") == "qwen3-coder"


# ------------------------------------------------------------------------ Qwen3.5 / 3.6


@pytest.mark.parametrize("name", ["qwen3.5", "qwen3.6"])
def test_qwen35_switch_is_the_template_variable_and_the_template_opens_think(name: str) -> None:
    family = family_for(name)
    assert family.reasoning and family.thinking_switch
    real = template("Qwen3.5-4B.jinja")
    on, off = render(real, name, True), render(real, name, False)
    assert on == QWEN_HISTORY + "<|im_start|>assistant\n<think>\n"
    assert off == QWEN_HISTORY + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert prompt_opens_thinking(on) and not prompt_opens_thinking(off)
    # Qwen3.5 has no /no_think soft switch: nothing is ever appended to the user's text
    assert family.soft_switch_suffix(False, real) == family.soft_switch_suffix(False, None) == ""
    assert family.forced_think_open(True) == ""  # the template opens it itself
    assert_split(on, "Add.\n</think>\n\n4", "Add.", "4")
    assert_split(off, "4", None, "4")


def test_qwen35_sampling_follows_the_mode() -> None:
    catalog = load_catalog()
    entry = catalog.get("qwen3.5-4b-q4km")
    family = family_for(entry.family)
    thinking = resolve_sampling(entry.sampling, family, True).given()
    plain = resolve_sampling(entry.sampling, family, False).given()
    assert (thinking["temperature"], thinking["top_p"]) == (1.0, 0.95)
    assert (plain["temperature"], plain["top_p"]) == (0.7, 0.8)
    assert catalog.get("qwen3.6-35b-a3b-ud-q4km").family == "qwen3.6"


def test_qwen35_guessed_from_gguf_metadata() -> None:
    assert guess_family("qwen35", "Qwen3.5-4B") == "qwen3.5"
    assert guess_family("qwen35moe", "Qwen3.6-35B-A3B") == "qwen3.6"
    assert guess_family("qwen35", None, Path("Qwen3.5-9B-Q4_K_M.gguf")) == "qwen3.5"


# ------------------------------------------------------------------- DeepSeek-R1-0528


def test_deepseek_r1_0528_always_thinks_in_deepseeks_chat_format() -> None:
    family = family_for("deepseek-r1-0528")
    assert family.always_thinks and "<｜end▁of▁sentence｜>" in family.stop_strings
    real = template("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja")
    prompt = render(real, "deepseek-r1-0528", False, bos=R1_BOS)
    assert prompt == (
        R1_BOS + "Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
        "<｜User｜>2+2?<｜Assistant｜><think>\n"
    )
    # without the variable Hanlin passes, this template closes the block at once
    bare = render_chat_prompt(real, MESSAGES, bos_token=R1_BOS)
    assert bare.endswith("<think>\n</think>") and not prompt_opens_thinking(bare)
    assert_split(prompt, "2 and 2 make 4.\n</think>\n\n**4**", "2 and 2 make 4.", "**4**")


def test_deepseek_r1_0528_reply_that_opens_the_block_itself() -> None:
    """R1-0528's own template no longer forces `<think>`: the model writes it."""
    prompt = "<｜User｜>2+2?<｜Assistant｜>"
    assert_split(prompt, "<think>\nSum.\n</think>\n\n4", "Sum.", "4")


def test_deepseek_r1_0528_is_told_from_the_distills_and_qwen3() -> None:
    assert guess_family("qwen3", "DeepSeek-R1-0528-Qwen3-8B") == "deepseek-r1-0528"
    assert guess_family("qwen2", "DeepSeek R1 Distill Qwen 7B") == "deepseek-r1-distill"
    entry = load_catalog().get("deepseek-r1-0528-qwen3-8b-q4km")
    assert entry.family == "deepseek-r1-0528" and entry.sampling.temperature == 0.6


# ---------------------------------------------------------------- GLM-4 and CodeGeeX4


GLM4_PROMPT = (
    "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\nHello!"
    "<|user|>\n2+2?<|assistant|>\n"
)


@pytest.mark.parametrize("name", ["glm-4", "codegeex4"])
def test_glm4_format_has_the_gmask_prefix_and_no_reasoning(name: str) -> None:
    family = family_for(name)
    assert not family.reasoning and family.template_variables(True) == {}
    real = template("llama-cpp-test-ChatGLM4.jinja")
    assert render(real, name, True) == render(real, name, False) == GLM4_PROMPT
    # the family's fallback for a GGUF without a template renders the same prompt
    assert family.default_template == GLM4_TEMPLATE
    assert render(GLM4_TEMPLATE, name, True) == GLM4_PROMPT
    assert_split(GLM4_PROMPT, "2 + 2 = 4", None, "2 + 2 = 4")


def test_glm_replies_end_at_the_next_turn_marker() -> None:
    matcher = StopMatcher(family_for("glm-4").stop_strings)
    text, stopped = matcher.feed("4<|user|>\nand then")
    assert stopped and text == "4"
    matcher = StopMatcher(family_for("glm-4.5").stop_strings)
    assert matcher.feed("4<|observation|>")[1]


def test_codegeex4_does_chat_and_fim() -> None:
    family = family_for("codegeex4")
    assert family.fim_template == "codegeex4" and "codegeex4" in FIM_TEMPLATES
    entry = load_catalog().get("codegeex4-all-9b-q4km")
    assert entry.roles == ("chat", "completion") and entry.family == "codegeex4"
    assert guess_family("chatglm", "codegeex4-all-9b") == "codegeex4"
    assert guess_family("chatglm", "glm-4-9b-chat") == "glm-4"
    assert guess_family("glm4", "GLM-4-9B-0414") == "glm-4"


# ------------------------------------------------------------------------- GLM-4.5-Air


def test_glm45_thinks_by_default_and_writes_the_block_itself() -> None:
    family = family_for("glm-4.5")
    assert family.reasoning and family.thinking_switch
    real = template("GLM-4.6.jinja")
    on = render(real, "glm-4.5", True)
    assert on == (
        "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\n<think></think>\nHello!"
        "<|user|>\n2+2?<|assistant|>"
    )
    assert not prompt_opens_thinking(on)
    assert_split(on, "<think>Add them.</think>\n4", "Add them.", "4")


def test_glm45_switch_off_appends_nothink_and_an_empty_block() -> None:
    family = family_for("glm-4.5")
    real = template("GLM-4.6.jinja")
    off = render(real, "glm-4.5", False)
    assert off == (
        "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi/nothink<|assistant|>\n<think></think>\n"
        "Hello!<|user|>\n2+2?/nothink<|assistant|>\n<think></think>"
    )
    assert not prompt_opens_thinking(off)
    assert_split(off, "\n4", None, "4")
    # the template reads the variable, so Hanlin adds no soft switch of its own…
    assert family.soft_switch_suffix(False, real) == ""
    # …but zai-org's `/nothink` for a template that does not
    assert family.soft_switch_suffix(False, CHATML_TEMPLATE) == " /nothink"


def test_glm45_air_is_guessed_and_sharded() -> None:
    assert guess_family("glm4moe", "GLM-4.5-Air") == "glm-4.5"
    entry = load_catalog().get("glm-4.5-air-q4km")
    assert entry.family == "glm-4.5" and entry.is_sharded


# ----------------------------------------------------------------------- GLM-4.7-Flash


def test_glm47_flash_template_opens_the_block_or_closes_it_when_off() -> None:
    family = family_for("glm-4.7-flash")
    real = template("GLM-4.7-Flash.jinja")
    on, off = render(real, "glm-4.7-flash", True), render(real, "glm-4.7-flash", False)
    history = (
        "[gMASK]<sop><|system|>Be brief.<|user|>Hi<|assistant|></think>Hello!"
        "<|user|>2+2?<|assistant|>"
    )
    assert on == history + "<think>" and off == history + "</think>"
    assert prompt_opens_thinking(on) and not prompt_opens_thinking(off)
    assert family.forced_think_open(True) == ""  # its own template does it
    assert_split(on, "Two and two.</think>4", "Two and two.", "4")
    assert_split(off, "4", None, "4")
    sampling = resolve_sampling(None, family, True).given()
    assert sampling["temperature"] == 1.0 and sampling["min_p"] == 0.01


def test_glm47_flash_is_not_taken_for_deepseek() -> None:
    """llama.cpp converts GLM-4.7-Flash to the `deepseek2` (MLA) architecture."""
    assert guess_family("deepseek2", "GLM-4.7-Flash") == "glm-4.7-flash"
    assert guess_family("deepseek2", None, Path("GLM-4.7-Flash-UD-Q4_K_XL.gguf")) == (
        "glm-4.7-flash"
    )
    assert guess_family("deepseek2", "DeepSeek-Coder-V2-Lite-Instruct") == "deepseek-coder-v2"


def test_kimi_linear_is_an_instruct_model() -> None:
    family = family_for("kimi-linear")
    assert not family.reasoning and "<|im_end|>" in family.stop_strings
    assert guess_family("kimi-linear", "Kimi Linear 48B A3B Instruct") == "kimi-linear"


# ----------------------------------------------- the prompter and the stream, on real GGUFs


@pytest.fixture(scope="module")
def qwen_tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    """A tiny Qwen-vocabulary model whose GGUF template is plain ChatML (no `<think>`)."""
    path = write_tiny_fim_gguf(
        tmp_path_factory.mktemp("fam") / "qwen-chatml.gguf", chat_template=CHATML_TEMPLATE
    )
    model = load_model(
        path, family="qwen3-thinking-2507", options=LoadOptions(n_ctx=512, threads=1)
    )
    try:
        yield model
    finally:
        model.close()


@pytest.fixture(scope="module")
def glm_tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    """A tiny GLM-vocabulary model whose GGUF carries no chat template."""
    path = write_tiny_fim_gguf(tmp_path_factory.mktemp("fam") / "glm.gguf", "codegeex4")
    model = load_model(path, family="glm-4", options=LoadOptions(n_ctx=512, threads=1))
    try:
        yield model
    finally:
        model.close()


def test_prompter_opens_think_for_a_thinking_2507_gguf_whose_template_does_not(
    qwen_tiny: LoadedModel,
) -> None:
    with qwen_tiny.lock:
        _, text = ChatPrompter(qwen_tiny, family_for("qwen3-thinking-2507"), False).prompt(MESSAGES)
        assert text.endswith("<|im_start|>assistant\n<think>\n")
        assert prompt_opens_thinking(text)
        # a family without the flag is left as its template renders it
        _, plain = ChatPrompter(qwen_tiny, family_for("qwen3-instruct-2507"), True).prompt(MESSAGES)
        assert plain.endswith("<|im_start|>assistant\n")


def test_prompter_never_opens_think_twice(qwen_tiny: LoadedModel) -> None:
    import dataclasses

    real = template("unsloth-qwen3-thinking.jinja")
    original = qwen_tiny.info
    qwen_tiny.info = dataclasses.replace(original, chat_template=real)
    try:
        with qwen_tiny.lock:
            _, text = ChatPrompter(qwen_tiny, family_for("qwen3-thinking-2507"), True).prompt(
                MESSAGES
            )
    finally:
        qwen_tiny.info = original
    assert text.endswith("<|im_start|>assistant\n<think>\n")
    assert text.count("<think>") == 1


def test_glm_gguf_without_a_template_gets_glms_format_not_chatml(glm_tiny: LoadedModel) -> None:
    assert glm_tiny.chat_template is None
    with glm_tiny.lock:
        ids, text = ChatPrompter(glm_tiny, family_for("glm-4"), True).prompt(MESSAGES)
        session = glm_tiny.session
        markers = [session.token_id(t) for t in ("[gMASK]", "<sop>", "<|system|>")]
    assert text == GLM4_PROMPT
    assert ids[:3] == markers and None not in markers  # each marker one special token
    assert "<|im_start|>" not in text
    # a family without a template of its own still falls back to ChatML
    assert FamilyBehavior(name="x").default_template is None


def test_stream_of_a_thinking_2507_model_starts_inside_reasoning(qwen_tiny: LoadedModel) -> None:
    """What the tiny model writes is noise; all of it is reasoning, since the prompt opened
    the block and the model never closed it."""
    events: list[StreamEvent] = []
    reply = stream_chat(
        qwen_tiny,
        [ChatMessage("user", "2+2?")],
        thinking=False,  # ignored: this family always thinks
        max_tokens=6,
        seed=7,
        on_event=events.append,
    )
    assert events and {e.kind for e in events} == {"thinking"}
    assert reply.content == "" and reply.thinking
    assert reply.stats.sampling["temperature"] == 0.6
