"""Per-family behaviour of the models Hanlin runs, as a registry.

Why: Qwen3 thinks unless told not to, DeepSeek-R1 distills always think (and
their template may already open the `<think>` block), coder base models need a
particular fill-in-the-middle template, and each family has its own end-of-turn
strings. Rather than scatter `if family == ...` through the runtime, the chat
code and the completion engine, each family is described once here and looked
up by name (the catalog's `family` key). New families are added with
`register_family`; unknown names fall back to the generic "llama" behaviour.

`guess_family` picks a family for a GGUF that did not come from the catalog
(an import) from its metadata: `general.architecture`, `general.name`, and
the file's basename.

Thinking comes in three shapes, and each family says which it has:

- a switch (Qwen3, Qwen3.5/3.6, GLM-4.5, GLM-4.7-Flash): the chat template reads
  `enable_thinking`; Qwen3.5/3.6 and GLM-4.7-Flash templates then open `<think>`
  themselves, Qwen3 and GLM-4.5 leave it to the model;
- always (DeepSeek-R1 distills, Qwen3-Thinking-2507): no switch; Thinking-2507's
  template opens `<think>` itself, so the model writes only the closing tag
  (`opens_thinking`: the prompter adds the opening tag when a template does not);
- never (Qwen3-Instruct-2507, GLM-4-0414, CodeGeeX4): no switch to show, and the
  `/no_think` option is a no-op.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "FAMILIES",
    "GENERIC_FAMILY",
    "GLM4_TEMPLATE",
    "FamilyBehavior",
    "FamilyRule",
    "family_for",
    "guess_family",
    "register_family",
    "register_rule",
]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class FamilyBehavior:
    """How one model family chats, reasons and completes code."""

    name: str
    #: emits <think>…</think> reasoning blocks
    reasoning: bool = False
    #: the user can turn thinking off (Qwen3); False for families that always think
    thinking_switch: bool = False
    #: chat-template variable that switches thinking (Qwen3: `enable_thinking`)
    thinking_template_var: str | None = None
    #: text appended to the last user message to turn thinking off when the template
    #: has no variable for it (Qwen3's documented `/no_think` soft switch)
    no_think_soft_switch: str | None = None
    #: text-level stop strings, besides the vocabulary's end-of-generation tokens
    stop_strings: tuple[str, ...] = ()
    #: name of the FIM template in engine/fim.py's registry (None: no FIM)
    fim_template: str | None = None
    #: the reply starts inside a reasoning block the prompt opened: the family's own
    #: template ends with `<think>` (Qwen3-Thinking-2507), so the model writes only the
    #: closing tag; the prompter opens the block when a GGUF's template does not
    opens_thinking: bool = False
    #: the chat template to use when a GGUF carries none (GLM's `[gMASK]<sop>` format is
    #: not ChatML, which is the fallback otherwise)
    default_template: str | None = None
    #: recommended sampling when thinking is on / off (keys as in catalog Sampling)
    sampling_thinking: Mapping[str, float] = field(default_factory=dict)
    sampling_plain: Mapping[str, float] = field(default_factory=dict)

    def template_variables(self, thinking: bool) -> dict[str, object]:
        """Extra variables to pass to the chat template.

        Families that always think still pass the variable as true: some
        templates (llama.cpp's R1 variants) close the think block when it is
        undefined.
        """
        if self.reasoning and self.thinking_template_var:
            return {self.thinking_template_var: thinking if self.thinking_switch else True}
        return {}

    def soft_switch_suffix(self, thinking: bool, template: str | None) -> str:
        """Text to append to the last user message to turn thinking off, if needed.

        Used only when thinking is off and the chat template does not read the
        family's template variable (an older or hand-made template).
        """
        if thinking or not self.thinking_switch or not self.no_think_soft_switch:
            return ""
        var = self.thinking_template_var
        if template and var and var in template:
            return ""
        return self.no_think_soft_switch

    def thinks(self, thinking: bool) -> bool:
        """Whether a reply reasons, given the user's switch (ignored where there is none)."""
        return self.reasoning and (thinking or not self.thinking_switch)

    @property
    def always_thinks(self) -> bool:
        """Reasons on every reply and has no switch (the front ends hide theirs)."""
        return self.reasoning and not self.thinking_switch

    def forced_think_open(self, thinking: bool) -> str:
        """Text that opens the reasoning block at the end of the prompt, or "".

        Only for families whose own template opens it (`opens_thinking`), so a GGUF
        with an older or hand-made template still gets the prompt the model was
        trained on; the prompter adds it only when the rendered prompt lacks it.
        """
        return THINK_OPEN + "\n" if self.opens_thinking and self.thinks(thinking) else ""

    def recommended_sampling(self, thinking: bool) -> Mapping[str, float]:
        """The model card's sampling for a reply that thinks or not (`thinks()` decides).

        Below the catalog entry's and the user's values: engine/chat/sampling.py.
        """
        return self.sampling_thinking if self.thinks(thinking) else self.sampling_plain


GENERIC_FAMILY = "llama"

_CHATML_STOPS = ("<|im_end|>", "<|endoftext|>")
_DEEPSEEK_STOPS = ("<｜end▁of▁sentence｜>", "<|EOT|>")

FAMILIES: dict[str, FamilyBehavior] = {}


def register_family(behavior: FamilyBehavior) -> FamilyBehavior:
    """Add (or replace) a family; returns it."""
    FAMILIES[behavior.name] = behavior
    return behavior


def family_for(name: str | None) -> FamilyBehavior:
    """The behaviour for a family name; the generic one for None or unknown names."""
    if name and name in FAMILIES:
        return FAMILIES[name]
    return FAMILIES[GENERIC_FAMILY]


# Qwen2.5-Coder / Qwen3-Coder model cards
_QWEN_CODER_SAMPLING = MappingProxyType(
    {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05}
)

register_family(FamilyBehavior(name=GENERIC_FAMILY, stop_strings=()))
register_family(
    FamilyBehavior(
        name="qwen2.5-coder",
        stop_strings=_CHATML_STOPS,
        fim_template="qwen2.5-coder",
        sampling_plain=_QWEN_CODER_SAMPLING,
    )
)
register_family(
    FamilyBehavior(
        name="qwen3",
        reasoning=True,
        thinking_switch=True,
        thinking_template_var="enable_thinking",
        no_think_soft_switch=" /no_think",
        stop_strings=_CHATML_STOPS,
        # Qwen's model cards: thinking 0.6/0.95/20/0, non-thinking 0.7/0.8/20/0
        sampling_thinking={"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
        sampling_plain={"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
    )
)
register_family(
    FamilyBehavior(
        name="qwen3-coder",
        stop_strings=_CHATML_STOPS,
        fim_template="qwen2.5-coder",
        sampling_plain=_QWEN_CODER_SAMPLING,
    )
)
register_family(
    FamilyBehavior(
        name="deepseek-r1-distill",
        reasoning=True,
        thinking_switch=False,
        thinking_template_var="enable_thinking",
        stop_strings=_DEEPSEEK_STOPS,
        sampling_thinking={"temperature": 0.6, "top_p": 0.95},
        sampling_plain={"temperature": 0.6, "top_p": 0.95},
    )
)
register_family(
    FamilyBehavior(
        name="deepseek-coder-v2", stop_strings=_DEEPSEEK_STOPS, fim_template="deepseek-coder"
    )
)
register_family(
    FamilyBehavior(
        name="deepseek-coder", stop_strings=_DEEPSEEK_STOPS, fim_template="deepseek-coder"
    )
)

# ---- 2025-26 families -------------------------------------------------------------------

# Qwen3-4B/30B-A3B-Instruct-2507 model cards: no thinking mode at all (the template
# never emits <think>, and `enable_thinking` is not read); 0.7/0.8/20/0.
register_family(
    FamilyBehavior(
        name="qwen3-instruct-2507",
        stop_strings=_CHATML_STOPS,
        sampling_plain={"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
    )
)
# Qwen3-…-Thinking-2507 model cards: thinking only; the template opens <think> itself,
# so the output holds only </think>; 0.6/0.95/20/0.
register_family(
    FamilyBehavior(
        name="qwen3-thinking-2507",
        reasoning=True,
        thinking_switch=False,
        opens_thinking=True,
        stop_strings=_CHATML_STOPS,
        sampling_thinking={"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
        sampling_plain={"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
    )
)
# Qwen3.5 / Qwen3.6 (hybrid Gated DeltaNet, `qwen35`/`qwen35moe` in llama.cpp): the
# template reads `enable_thinking` and opens `<think>\n` itself (an empty block when off);
# the /think and /no_think soft switches of Qwen3 are not supported. Model card sampling:
# thinking 1.0/0.95/20/0, non-thinking 0.7/0.8/20/0 (both with presence_penalty 1.5,
# which Hanlin's sampler chain does not take).
_QWEN35 = {
    "reasoning": True,
    "thinking_switch": True,
    "thinking_template_var": "enable_thinking",
    "stop_strings": _CHATML_STOPS,
    "sampling_thinking": {"temperature": 1.0, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
    "sampling_plain": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
}
register_family(FamilyBehavior(name="qwen3.5", **_QWEN35))  # type: ignore[arg-type]
register_family(FamilyBehavior(name="qwen3.6", **_QWEN35))  # type: ignore[arg-type]
# DeepSeek-R1-0528-Qwen3-8B: R1-0528 distilled into Qwen3-8B (qwen3 architecture, DeepSeek's
# tokenizer and chat format); always reasons, model card sampling 0.6/0.95.
register_family(
    FamilyBehavior(
        name="deepseek-r1-0528",
        reasoning=True,
        thinking_switch=False,
        thinking_template_var="enable_thinking",
        stop_strings=_DEEPSEEK_STOPS,
        sampling_thinking={"temperature": 0.6, "top_p": 0.95},
        sampling_plain={"temperature": 0.6, "top_p": 0.95},
    )
)

#: GLM's turn markers: a reply ends where the next turn's marker would start
_GLM_STOPS = ("<|user|>", "<|observation|>", "<|endoftext|>")
#: GLM-4's chat format (THUDM's GLM-4-9B-chat / CodeGeeX4 template, tools part left out),
#: for a GLM GGUF that carries no template: ChatML would be wrong for these models
GLM4_TEMPLATE = (
    "[gMASK]<sop>{% for item in messages %}{% if item['content'] %}"
    "<|{{ item['role'] }}|>\n{{ item['content'] }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# GLM-4-9B-0414 (llama.cpp `glm4`) and GLM-4-9B-chat (`chatglm`): no reasoning.
register_family(
    FamilyBehavior(name="glm-4", stop_strings=_GLM_STOPS, default_template=GLM4_TEMPLATE)
)
# GLM-4.5 / GLM-4.5-Air / GLM-4.6 (`glm4moe`): hybrid reasoning, on by default and written
# by the model itself; the template reads `enable_thinking` (false: `/nothink` after each
# user message and an empty <think></think>); zai-org's soft switch is `/nothink`.
register_family(
    FamilyBehavior(
        name="glm-4.5",
        reasoning=True,
        thinking_switch=True,
        thinking_template_var="enable_thinking",
        no_think_soft_switch=" /nothink",
        stop_strings=_GLM_STOPS,
        sampling_thinking={"temperature": 0.6, "top_p": 0.95},
        sampling_plain={"temperature": 0.6, "top_p": 0.95},
    )
)
# GLM-4.7-Flash (30B-A3B, llama.cpp `deepseek2` with MLA): the template opens <think> itself
# and closes it at once (`</think>`) when `enable_thinking` is false. Z.ai's sampling per
# unsloth's guide: 1.0/0.95, min_p 0.01 (llama.cpp's 0.05 default is too high), no
# repeat penalty.
register_family(
    FamilyBehavior(
        name="glm-4.7-flash",
        reasoning=True,
        thinking_switch=True,
        thinking_template_var="enable_thinking",
        stop_strings=_GLM_STOPS,
        sampling_thinking={"temperature": 1.0, "top_p": 0.95, "min_p": 0.01, "repeat_penalty": 1.0},
        sampling_plain={"temperature": 1.0, "top_p": 0.95, "min_p": 0.01, "repeat_penalty": 1.0},
    )
)
# CodeGeeX4-ALL-9B: GLM-4-9B continued on code (`chatglm`), chat in GLM-4's format and
# fill-in-the-middle with its own <|code_suffix|>/<|code_prefix|>/<|code_middle|> prompt.
register_family(
    FamilyBehavior(
        name="codegeex4",
        stop_strings=_GLM_STOPS,
        fim_template="codegeex4",
        default_template=GLM4_TEMPLATE,
    )
)
# Kimi-Linear-48B-A3B-Instruct (`kimi-linear`: Kimi Delta Attention + MLA): an instruct
# model, no reasoning block; turns end with <|im_end|>.
register_family(FamilyBehavior(name="kimi-linear", stop_strings=("<|im_end|>",)))


@dataclass(frozen=True)
class FamilyRule:
    """Guess `family` when the architecture matches and the name/basename matches `pattern`."""

    family: str
    architectures: tuple[str, ...] = ()  # empty = any
    pattern: str | None = None  # regex searched in "general.name + basename", lower-cased

    def matches(self, architecture: str, text: str) -> bool:
        if self.architectures and architecture not in self.architectures:
            return False
        return self.pattern is None or re.search(self.pattern, text) is not None


#: first match wins: specific names before broad architectures
_RULES: list[FamilyRule] = [
    FamilyRule("deepseek-r1-0528", (), r"r1[-_ ]?0528"),
    FamilyRule("deepseek-r1-distill", (), r"deepseek[-_ ]?r1|r1[-_ ]distill"),
    FamilyRule("codegeex4", (), r"codegeex"),
    FamilyRule("glm-4.7-flash", (), r"glm[-_ ]?4\.7"),
    FamilyRule("glm-4.5", ("glm4moe",)),
    FamilyRule("glm-4.5", (), r"glm[-_ ]?4\.[56]"),
    FamilyRule("glm-4", ("glm4", "chatglm")),
    FamilyRule("kimi-linear", ("kimi-linear",)),
    FamilyRule("qwen3.6", ("qwen35", "qwen35moe"), r"qwen[-_ ]?3\.6"),
    FamilyRule("qwen3.5", ("qwen35", "qwen35moe")),
    FamilyRule("qwen3-coder", ("qwen3", "qwen3moe"), r"coder"),
    FamilyRule("qwen3-thinking-2507", ("qwen3", "qwen3moe"), r"thinking[-_ ]?2507"),
    FamilyRule("qwen3-instruct-2507", ("qwen3", "qwen3moe"), r"2507"),
    FamilyRule("qwen3", ("qwen3", "qwen3moe")),
    FamilyRule("deepseek-coder-v2", ("deepseek2",), r"coder"),
    FamilyRule("deepseek-coder", (), r"deepseek[-_ ]?coder"),
    FamilyRule("qwen2.5-coder", ("qwen2",), r"coder"),
]


def register_rule(rule: FamilyRule, *, first: bool = True) -> None:
    """Add a guessing rule (checked before the built-in ones unless `first=False`)."""
    if first:
        _RULES.insert(0, rule)
    else:
        _RULES.append(rule)


def guess_family(
    architecture: str | None,
    name: str | None = None,
    path: Path | str | None = None,
) -> str:
    """A family name from GGUF metadata (`general.architecture`, `general.name`) and the file name.

    Returns GENERIC_FAMILY when nothing more specific matches.
    """
    arch = (architecture or "").lower()
    text = " ".join(part for part in (name or "", Path(path).name if path else "") if part).lower()
    for rule in _RULES:
        if rule.matches(arch, text):
            return rule.family
    return GENERIC_FAMILY
