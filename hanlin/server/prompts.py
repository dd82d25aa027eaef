"""Chat turns → prompt tokens, through the model's own chat template (tools included).

Both dialects are first turned into `Turn`s (role, text, and for tool turns the fields
Hugging Face templates read: an assistant's `tool_calls`, a tool result's
`tool_call_id`/`name`); then `render` uses the engine's `ChatPrompter`: the GGUF's
template in the sandbox with its time limit (a hostile template fails the request
with a clear error, the server stays up), message text never parsed into control
tokens, and the family's thinking switch. Templates that know nothing of tools get
the tool instructions in the system turn and tool turns written the way Qwen's
template writes them (`<tool_call>` / `<tool_response>`), so any model can be offered
tools.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hanlin.server.tools import (
    CALL_CLOSE,
    CALL_OPEN,
    ToolSpec,
    template_renders_tools,
    tools_system_text,
)

if TYPE_CHECKING:
    from hanlin.server.models import ServedModel

__all__ = ["Turn", "render"]


@dataclass
class Turn:
    role: str
    content: str
    #: template fields beyond role/content (tool_calls, tool_call_id, name)
    extra: dict[str, Any] | None = None


def _as_text_turns(turns: Sequence[Turn]) -> list[Turn]:
    """Tool calls and results as plain text, for templates without tool support."""
    out: list[Turn] = []
    for turn in turns:
        extra = turn.extra or {}
        if turn.role == "assistant" and extra.get("tool_calls"):
            calls = []
            for call in extra["tool_calls"]:
                fn = call.get("function", {})
                body = json.dumps(
                    {"name": fn.get("name"), "arguments": fn.get("arguments", {})},
                    ensure_ascii=False,
                )
                calls.append(f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}")
            text = "\n".join(([turn.content] if turn.content else []) + calls)
            out.append(Turn("assistant", text))
        elif turn.role == "tool":
            text = f"<tool_response>\n{turn.content}\n</tool_response>"
            if out and out[-1].role == "user" and out[-1].content.startswith("<tool_response>"):
                out[-1] = Turn("user", out[-1].content + "\n" + text)
            else:
                out.append(Turn("user", text))
        else:
            out.append(Turn(turn.role, turn.content))
    return out


def render(
    served: ServedModel,
    turns: Sequence[Turn],
    *,
    thinking: bool,
    tools: Sequence[ToolSpec] = (),
) -> tuple[list[int], str]:
    """(prompt token ids, prompt text). Blocking (template + tokenizer): call on a worker."""
    from hanlin.engine.chat.template import ChatPrompter

    template = served.loaded.chat_template
    native = template_renders_tools(template)
    work = list(turns) if native else _as_text_turns(turns)
    tool_dicts = None
    if tools:
        if native:
            tool_dicts = [s.as_openai() for s in tools]
        else:
            text = tools_system_text(tools)
            if work and work[0].role == "system":
                work[0] = Turn("system", f"{work[0].content}\n\n{text}")
            else:
                work.insert(0, Turn("system", text))
    with served.render_lock:
        prompter = ChatPrompter(served.loaded, served.behavior, thinking, tools=tool_dicts)
        return prompter.prompt(work)
