"""GBNF grammars for constrained output: JSON mode, JSON schemas, forced tool calls.

llama.cpp's grammar sampler lets only tokens the grammar allows be sampled, so "answer
in JSON" holds for any model, not just for models that follow the instruction. The
JSON-schema → GBNF converter is llama-cpp-python's (`llama_cpp.llama_grammar`, a port of
llama.cpp's own `json_schema_to_grammar`), not a copy of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from hanlin.server.errors import ApiError

__all__ = ["json_object_grammar", "json_schema_grammar", "wrap_grammar"]


def json_object_grammar() -> str:
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF  # root ::= object


def json_schema_grammar(schema: Mapping[str, Any], prop_order: list[str] | None = None) -> str:
    """A grammar whose `root` is a JSON value matching `schema`."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(json.dumps(schema), prop_order)
    except Exception as exc:  # the converter raises plain exceptions for schemas it cannot do
        raise ApiError(
            400, f"The JSON schema cannot be turned into a grammar: {exc}", param="schema"
        ) from exc


_ROOT_RULE = re.compile(r"^root(\s*::=)", re.MULTILINE)


def wrap_grammar(grammar: str, before: str, after: str, *, name: str = "inner") -> str:
    """`grammar` with its root renamed to `name`, between two literal texts."""
    if re.search(rf"^{re.escape(name)}\s*::=", grammar, re.MULTILINE):
        raise ValueError(f"the grammar already has a rule named {name}")
    # the converters never refer to `root` from another rule: renaming its definition is enough
    body = _ROOT_RULE.sub(rf"{name}\1", grammar, count=1)
    return f"root ::= {json.dumps(before)} {name} {json.dumps(after)}\n{body}"
