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
    FamilyRule("deepseek-r1-distill", (), r"deepseek[-_ ]?r1|r1[-_ ]distill"),
    FamilyRule("qwen3-coder", ("qwen3", "qwen3moe"), r"coder"),
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
