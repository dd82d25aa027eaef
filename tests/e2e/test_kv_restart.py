"""A long chat reopened in a new process evaluates only its new tokens and answers as if the
process had never stopped (real SmolLM2, real llama.cpp, three real processes).

1. chat-save: a process chats two turns over a long system prompt, saves its KV cache,
   and answers the next message (the answer a user who never quit would get);
2. restore: a new process reopens the conversation and sends the same message: the saved
   state is loaded, only the tokens after it are evaluated, the answer is the same;
3. cold: a new process with no saved state evaluates the whole prompt: the same answer.

A damaged state (one byte flipped) in a new process is deleted and the answer is the cold one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hanlin.engine.runtime.kv_state_store import KVStateStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

SYSTEM = (
    "You are a patient guide to a small harbour town. The town has a stone quay, a fish "
    "market that opens at five, a bakery famous for rye bread, a lighthouse on the north "
    "point and a ferry to the island twice a day. Answer in one or two short sentences. "
) * 2


def run_turn(
    model: Path, tmp: Path, mode: str, spec: dict[str, Any], home: Path
) -> dict[str, Any]:
    """Run one turn in a new process whose HANLIN_HOME (and so KV store) is `home`."""
    spec_file = tmp / f"{mode}-{home.name}-spec.json"
    out_file = tmp / f"{mode}-{home.name}-out.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.kv_chat_turn",
            str(model),
            str(spec_file),
            str(out_file),
            "--mode",
            mode,
        ],
        cwd=ROOT,
        env={**os.environ, "HANLIN_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out_file.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def chatted(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The first process's conversation, saved state and never-restarted answer."""
    tmp = tmp_path_factory.mktemp("kv_restart")
    spec = {
        "system": SYSTEM,
        "turns": ["When does the fish market open?", "And what is the bakery known for?"],
        "next": "How do I get to the island?",
        "n_ctx": 1024,
        "max_tokens": 24,
    }
    first = run_turn(smollm2_path, tmp, "chat-save", spec, tmp / "home")
    return {"spec": spec, "first": first, "tmp": tmp}


def test_a_reopened_conversation_evaluates_only_its_new_tokens(
    smollm2_path: Path, chatted: dict[str, Any]
) -> None:
    first, tmp = chatted["first"], chatted["tmp"]
    saved = first["saved"]
    assert saved is not None and Path(saved["path"]).is_file()
    assert Path(saved["path"]).is_relative_to(tmp / "home" / "data" / "kv-cache")
    spec = {**chatted["spec"], "history": first["history"]}

    restored = run_turn(smollm2_path, tmp, "restore", spec, tmp / "home")
    warm, again = first["answer"]["stats"], restored["answer"]["stats"]
    # the new process spent exactly what the never-restarted one did: the new tokens only
    assert again["restored_tokens"] > 0 and again["restore_s"] > 0
    assert again["cached_tokens"] == warm["cached_tokens"] == again["restored_tokens"]
    assert again["evaluated_tokens"] == warm["evaluated_tokens"]
    assert again["prompt_tokens"] == warm["prompt_tokens"]
    assert again["evaluated_tokens"] < 40 < again["cached_tokens"]  # the message, not history
    assert saved["tokens"] >= again["cached_tokens"]
    assert restored["answer"]["content"] == first["answer"]["content"]
    assert restored["answer"]["content"].strip()

    # and a cold start reads everything, and says the same at temperature 0
    cold = run_turn(smollm2_path, tmp, "cold", spec, tmp / "cold-home")
    stats = cold["answer"]["stats"]
    assert stats["cached_tokens"] == 0 and stats["restored_tokens"] == 0
    assert stats["evaluated_tokens"] == stats["prompt_tokens"] == again["prompt_tokens"]
    assert cold["answer"]["content"] == restored["answer"]["content"]


def test_a_damaged_state_in_a_new_process_is_deleted_and_the_answer_is_the_cold_one(
    smollm2_path: Path, chatted: dict[str, Any]
) -> None:
    first = chatted["first"]
    home = chatted["tmp"] / "damaged-home"
    saved = Path(first["saved"]["path"])
    store = KVStateStore(home / "data" / "kv-cache")
    target = store.root / saved.relative_to(saved.parents[1])
    target.parent.mkdir(parents=True)
    data = bytearray(saved.read_bytes())
    data[len(data) - 1000] ^= 0xFF  # deep in llama.cpp's part: only the checksum sees it
    target.write_bytes(bytes(data))

    spec = {**chatted["spec"], "history": first["history"]}
    reopened = run_turn(smollm2_path, chatted["tmp"], "restore", spec, home)
    stats = reopened["answer"]["stats"]
    assert stats["restored_tokens"] == 0 and stats["cached_tokens"] == 0
    assert stats["evaluated_tokens"] == stats["prompt_tokens"]
    assert not target.exists()
    assert reopened["answer"]["content"] == first["answer"]["content"]
