"""Tool calling: tool specs in, the model's calls out (`tool_calls` / `tool_use`).

Models that know tools are told about them by their own chat template (Qwen2.5, Qwen3
and GLM templates render a `tools` variable into the system turn); for a template that
ignores `tools`, the same Hermes-style instructions Qwen's template writes are added to
the system message instead. The model then writes each call between `<tool_call>` and
`</tool_call>`, in one of these bodies, all parsed here:

- Qwen2.5 / Qwen3 / Hermes: `{"name": "get_weather", "arguments": {"city": "Paris"}}`
- Qwen3-Coder: `<function=get_weather>\\n<parameter=city>\\nParis\\n</parameter>\\n</function>`
- GLM-4.5: `get_weather\\n<arg_key>city</arg_key>\\n<arg_value>Paris</arg_value>`

`ToolCallSplitter` does this on the stream: answer text passes through (holding back
what may become `<tool_call>`), a complete call becomes a `ToolCall`, and a block that
parses as none of the above is given back as text, never lost. `tool_choice`
"required" (OpenAI) / "any" / {"type": "tool"} (Anthropic) is enforced with a grammar
(grammars.py): the reply is then exactly one call, its arguments matching the tool's
JSON schema.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hanlin.server.errors import ApiError
from hanlin.server.grammars import json_schema_grammar, wrap_grammar

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "ToolCall",
    "ToolCallSplitter",
    "ToolSpec",
    "new_call_id",
    "parse_call_body",
    "template_renders_tools",
    "tool_call_grammar",
    "tools_from_anthropic",
    "tools_from_openai",
    "tools_system_text",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    def as_openai(self) -> dict[str, Any]:
        """The Hugging Face / OpenAI shape chat templates expect in `tools`."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: Any  # a dict when the model wrote a JSON object

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)

    def input_object(self) -> dict[str, Any]:
        """Anthropic's `input`: always an object."""
        if isinstance(self.arguments, dict):
            return self.arguments
        return {"value": self.arguments}


def new_call_id(prefix: str = "call_") -> str:
    return prefix + secrets.token_hex(12)


def _spec(name: Any, description: Any, parameters: Any, where: str) -> ToolSpec:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ApiError(
            400, f"{where}: a tool needs a `name` of letters, digits, _ . -", param="tools"
        )
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise ApiError(400, f"{where}: the parameters of `{name}` must be a JSON schema object")
    return ToolSpec(name, description if isinstance(description, str) else "", dict(parameters))


def tools_from_openai(tools: Sequence[Mapping[str, Any]] | None) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools or ()):
        if tool.get("type", "function") != "function" or not isinstance(
            tool.get("function"), Mapping
        ):
            raise ApiError(
                400, f"tools[{i}]: only `function` tools are supported", param=f"tools[{i}]"
            )
        fn = tool["function"]
        specs.append(
            _spec(fn.get("name"), fn.get("description"), fn.get("parameters"), f"tools[{i}]")
        )
    return specs


def tools_from_anthropic(tools: Sequence[Mapping[str, Any]] | None) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise ApiError(
                400,
                f"tools[{i}]: `{kind}` is a tool Anthropic runs on its own servers; a local "
                "model can only call tools you define (name, description, input_schema)",
            )
        specs.append(
            _spec(
                tool.get("name"), tool.get("description"), tool.get("input_schema"), f"tools[{i}]"
            )
        )
    return specs


def template_renders_tools(template: str | None) -> bool:
    """Whether a chat template reads the `tools` variable (Qwen2.5/Qwen3/GLM ones do)."""
    return bool(template) and re.search(r"\btools\b", template or "") is not None


def tools_system_text(specs: Sequence[ToolSpec]) -> str:
    """Qwen's own tool instructions, for templates that do not render `tools` themselves."""
    lines = "\n".join(json.dumps(s.as_openai(), ensure_ascii=False) for s in specs)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{lines}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n"
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


# ---------------------------------------------------------------- parsing


def _value(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text


_QWEN_CODER_FN = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|$)", re.DOTALL)
_QWEN_CODER_PARAM = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.DOTALL)
_GLM_ARG = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)


def parse_call_body(body: str) -> ToolCall | None:
    """One call from the text between `<tool_call>` and `</tool_call>`; None if it is none."""
    text = body.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            args = _value(args) if args.strip() else {}
        return ToolCall(new_call_id(), obj["name"], args)
    match = _QWEN_CODER_FN.match(text)
    if match:
        params = {k.strip(): _value(v) for k, v in _QWEN_CODER_PARAM.findall(match.group(2))}
        return ToolCall(new_call_id(), match.group(1).strip(), params)
    name, _, rest = text.partition("\n")
    name = name.strip()
    if _NAME_RE.match(name) and (not rest.strip() or "<arg_key>" in rest):
        args = {k.strip(): _value(v) for k, v in _GLM_ARG.findall(rest)}
        return ToolCall(new_call_id(), name, args)
    return None


class ToolCallSplitter:
    """Streamed answer text → text pieces and `ToolCall`s (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = ""
        self._in_call = False
        self.calls: list[ToolCall] = []

    @staticmethod
    def _held(buf: str, tag: str) -> int:
        for n in range(min(len(tag) - 1, len(buf)), 0, -1):
            if tag.startswith(buf[-n:]):
                return n
        return 0

    def feed(self, text: str) -> list[str | ToolCall]:
        out: list[str | ToolCall] = []
        self._buf += text
        while self._buf:
            if not self._in_call:
                i = self._buf.find(CALL_OPEN)
                if i >= 0:
                    if i:
                        out.append(self._buf[:i])
                    self._buf = self._buf[i + len(CALL_OPEN) :]
                    self._in_call = True
                    continue
                hold = self._held(self._buf, CALL_OPEN)
                if len(self._buf) > hold:
                    out.append(self._buf[: len(self._buf) - hold])
                self._buf = self._buf[len(self._buf) - hold :]
                break
            i = self._buf.find(CALL_CLOSE)
            if i < 0:
                break  # the call is still being written
            out.append(self._close(self._buf[:i]))
            self._buf = self._buf[i + len(CALL_CLOSE) :]
            self._in_call = False
        return out

    def _close(self, body: str) -> str | ToolCall:
        call = parse_call_body(body)
        if call is None:
            return CALL_OPEN + body + CALL_CLOSE
        self.calls.append(call)
        return call

    def finish(self) -> list[str | ToolCall]:
        """At the end of the reply: an unclosed call is parsed as it stands (or given back)."""
        buf, self._buf = self._buf, ""
        if not buf:
            return []
        if self._in_call:
            self._in_call = False
            call = parse_call_body(buf)
            if call is not None:
                self.calls.append(call)
                return [call]
            return [CALL_OPEN + buf]
        return [buf]


# ---------------------------------------------------------------- forcing a call


def tool_call_grammar(specs: Sequence[ToolSpec], only: str | None = None) -> str:
    """GBNF for exactly one `<tool_call>{"name": …, "arguments": {…}}</tool_call>`."""
    chosen = [s for s in specs if only is None or s.name == only]
    if not chosen:
        raise ApiError(400, f"tool_choice names `{only}`, which is not among the tools")

    def alternative(spec: ToolSpec) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"name": {"const": spec.name}, "arguments": dict(spec.parameters)},
            "required": ["name", "arguments"],
        }

    schema = (
        alternative(chosen[0]) if len(chosen) == 1 else {"anyOf": [alternative(s) for s in chosen]}
    )
    try:
        inner = json_schema_grammar(schema, ["name", "arguments"])
    except ApiError:  # a schema the converter cannot do: any JSON object as arguments
        loose = [ToolSpec(s.name, s.description, {"type": "object"}) for s in chosen]
        return tool_call_grammar(loose)
    return wrap_grammar(inner, CALL_OPEN + "\n", "\n" + CALL_CLOSE, name="tool-call")
