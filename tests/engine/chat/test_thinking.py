"""Reasoning (<think>…</think>) handling: the streaming splitter, the thinking switch, families.

The splitter is fed synthetic token streams cut at every possible position (tags
split across tokens); the thinking switch is checked against the real Qwen3 and
DeepSeek-R1-Distill chat templates (as shipped in their GGUFs); and one test runs
the real SmolLM2 through a template that pre-opens a think block, to prove thinking
is streamed separately and never fed back into the history.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage, ChatSession
from hanlin.engine.chat.template import render_chat_prompt
from hanlin.engine.chat.thinking import StreamEvent, ThinkSplitter, prompt_opens_thinking
from hanlin.engine.models.families import (
    FAMILIES,
    FamilyBehavior,
    family_for,
    guess_family,
    register_family,
)
from hanlin.engine.runtime.session import PieceDecoder, StopMatcher

# The chat template of Qwen/Qwen3-0.6B (tokenizer.chat_template in its GGUF), tools part omitted.
QWEN3_TEMPLATE = """\
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in message.content %}
            {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}
            {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""  # noqa: E501

# DeepSeek-R1-Distill-Qwen's template (updated release): the generation prompt opens <think>.
R1_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system_prompt='') %}"
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{% endif %}{% endfor %}{{ ns.system_prompt }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

STREAM = "<think>\nThe user asks 2+2. That is 4.\n</think>\n\nThe answer is **4**."


def split_everywhere(text: str) -> list[list[str]]:
    """Token streams cutting `text` at every position, plus one-character tokens."""
    streams = [[text[:i], text[i:]] for i in range(1, len(text))]
    streams.append(list(text))
    return streams


def run(splitter: ThinkSplitter, chunks: list[str]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for chunk in chunks:
        events.extend(splitter.feed(chunk))
    events.extend(splitter.finish())
    return events


@pytest.mark.parametrize("chunks", split_everywhere(STREAM))
def test_splitter_separates_thinking_from_answer_at_any_cut(chunks: list[str]) -> None:
    splitter = ThinkSplitter()
    events = run(splitter, chunks)
    assert splitter.thinking == "The user asks 2+2. That is 4."
    assert splitter.answer == "The answer is **4**."
    # Every event's kind matches where its text came from, and nothing leaks a tag.
    thinking = "".join(e.text for e in events if e.kind == "thinking")
    answer = "".join(e.text for e in events if e.kind == "answer")
    assert "<think>" not in thinking + answer and "</think>" not in thinking + answer
    assert thinking.strip() == "The user asks 2+2. That is 4."
    assert answer.strip() == "The answer is **4**."
    assert all(e.text for e in events)


def test_splitter_streams_thinking_before_it_is_closed() -> None:
    splitter = ThinkSplitter()
    events = splitter.feed("<think>Let me see") + splitter.feed(" more")
    assert [e.kind for e in events] == ["thinking", "thinking"]
    assert "".join(e.text for e in events) == "Let me see more"
    assert splitter.in_thinking


def test_splitter_starts_inside_a_block_opened_by_the_prompt() -> None:
    splitter = ThinkSplitter(in_thinking=True)
    run(splitter, ["Hmm, ", "easy.</th", "ink>", "\n\nIt is 4."])
    assert splitter.thinking == "Hmm, easy."
    assert splitter.answer == "It is 4."


def test_splitter_leaves_answers_without_reasoning_alone() -> None:
    splitter = ThinkSplitter()
    run(splitter, ["You can write ", "<think> tags in", " HTML."])
    assert splitter.thinking is None
    assert splitter.answer == "You can write <think> tags in HTML."


def test_splitter_with_unclosed_block_keeps_everything_as_thinking() -> None:
    splitter = ThinkSplitter()
    run(splitter, ["<thi", "nk>", "still going </thi"])
    assert splitter.answer == ""
    assert splitter.thinking == "still going </thi"


def test_splitter_handles_empty_think_block_from_disabled_thinking() -> None:
    splitter = ThinkSplitter()
    run(splitter, ["<think>\n\n</think>\n\n", "Hello"])
    assert splitter.thinking == ""
    assert splitter.answer == "Hello"


def test_prompt_opens_thinking() -> None:
    assert prompt_opens_thinking("<｜Assistant｜><think>\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n")


MESSAGES = [
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello!", thinking="The user greets me."),
    ChatMessage("user", "2+2?"),
]


def test_qwen3_thinking_switch_uses_the_template_variable() -> None:
    qwen3 = family_for("qwen3")
    on = render_chat_prompt(QWEN3_TEMPLATE, MESSAGES, variables=qwen3.template_variables(True))
    off = render_chat_prompt(QWEN3_TEMPLATE, MESSAGES, variables=qwen3.template_variables(False))
    assert on.endswith("<|im_start|>assistant\n")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_thinking(on) and not prompt_opens_thinking(off)
    # The template reads the variable, so no soft switch is added to the user's text.
    assert qwen3.soft_switch_suffix(False, QWEN3_TEMPLATE) == ""
    # Thinking from earlier turns is never part of the prompt.
    assert "The user greets me" not in on


def test_qwen3_soft_switch_for_templates_without_the_variable() -> None:
    qwen3 = family_for("qwen3")
    plain_chatml = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert qwen3.soft_switch_suffix(False, plain_chatml) == " /no_think"
    assert qwen3.soft_switch_suffix(True, plain_chatml) == ""


def test_deepseek_r1_always_thinks_and_its_prompt_opens_the_block() -> None:
    r1 = family_for("deepseek-r1-distill")
    assert r1.reasoning and not r1.thinking_switch
    prompt = render_chat_prompt(
        R1_TEMPLATE,
        MESSAGES,
        bos_token="<｜begin▁of▁sentence｜>",
        variables=r1.template_variables(False),
    )
    assert prompt.startswith("<｜begin▁of▁sentence｜>Be brief.")
    assert prompt_opens_thinking(prompt)
    assert "The user greets me" not in prompt


def test_family_registry_and_guessing() -> None:
    assert set(FAMILIES) >= {
        "qwen2.5-coder",
        "qwen3",
        "qwen3-coder",
        "deepseek-r1-distill",
        "deepseek-coder-v2",
        "deepseek-coder",
        "llama",
    }
    assert family_for("qwen2.5-coder").fim_template == "qwen2.5-coder"
    assert family_for("deepseek-coder-v2").fim_template == "deepseek-coder"
    assert family_for("no-such-family").name == "llama"
    assert "<|im_end|>" in family_for("qwen3").stop_strings

    assert guess_family("qwen3", "Qwen3 4B") == "qwen3"
    assert guess_family("qwen3moe", "Qwen3 Coder 30B A3B Instruct") == "qwen3-coder"
    assert guess_family("qwen2", "DeepSeek R1 Distill Qwen 7B") == "deepseek-r1-distill"
    assert guess_family("qwen2", None, Path("Qwen2.5-Coder-1.5B-Q4_K_M.gguf")) == "qwen2.5-coder"
    assert guess_family("deepseek2", "DeepSeek-Coder-V2-Lite-Instruct") == "deepseek-coder-v2"
    assert guess_family("llama", "deepseek-coder-6.7b-base") == "deepseek-coder"
    assert guess_family("llama", "SmolLM2 135M") == "llama"


def test_register_family_adds_behaviour_without_code_changes() -> None:
    try:
        register_family(
            FamilyBehavior(name="test-thinker", reasoning=True, stop_strings=("<END>",))
        )
        assert family_for("test-thinker").stop_strings == ("<END>",)
    finally:
        FAMILIES.pop("test-thinker", None)


def test_stop_matcher_holds_back_partial_stop_strings() -> None:
    matcher = StopMatcher(["<|im_end|>"])
    out = []
    for piece in ["Hello", " <|im", "_e"]:
        text, stopped = matcher.feed(piece)
        out.append(text)
        assert not stopped
    assert "".join(out) == "Hello "
    text, stopped = matcher.feed("nd|> trailing")
    assert stopped and text == ""
    assert matcher.flush() == ""

    matcher = StopMatcher(["<|im_end|>"])
    assert matcher.feed("a <|im")[0] == "a "
    assert matcher.feed("possible")[0] == "<|impossible"


def test_piece_decoder_never_splits_a_character() -> None:
    data = "héllo 👋 世界".encode()
    decoder = PieceDecoder()
    out = "".join(decoder.feed(data[i : i + 1]) for i in range(len(data))) + decoder.flush()
    assert out == "héllo 👋 世界"


@pytest.mark.slow
def test_real_model_thinking_is_streamed_apart_and_not_fed_back(smollm2_path: Path) -> None:
    """SmolLM2 under an R1-style template: the prompt opens <think>, so the output is thinking."""
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    with load_model(
        smollm2_path, family="deepseek-r1-distill", options=LoadOptions(n_ctx=1024, threads=1)
    ) as model:
        model.info = dataclasses.replace(model.info, chat_template=R1_TEMPLATE)
        session = ChatSession(model, max_tokens=12)
        events: list[StreamEvent] = []
        reply = session.send("Count to three.", on_event=events.append)
        assert events and all(e.kind == "thinking" for e in events)
        assert reply.thinking and reply.content == ""
        assert "".join(e.text for e in events).strip() == reply.thinking
        assert session.history[-1].thinking == reply.thinking
        # What the model sees next turn carries no thinking at all.
        sent = session.messages()
        assert all(m.thinking is None for m in sent)
        assert reply.thinking not in "".join(m.content for m in sent)
