"""One chat turn in a process of its own, for the KV-cache restart tests and benchmark.

    python -m tests.support.kv_chat_turn MODEL SPEC.json OUT.json --mode chat-save|restore|cold

SPEC holds `system`, `turns` (user messages answered first, in chat-save mode),
`history` (the conversation so far, in restore and cold mode: [role, content] pairs),
`next` (the message whose answer is measured), `n_ctx`, `max_tokens`, `threads`.

- chat-save: answer `turns` one after another, save the KV cache to the store, then
  answer `next` in the same process (the "never restarted" answer) and write the
  history, what was saved and that answer.
- restore: a new process reopening the conversation: `history` + `next` with the store.
- cold: the same without any saved state (a full prefill).

OUT gets {"history", "saved", "answer": {"content", "stats"}, "load_s"}. Greedy sampling,
so answers are repeatable. The store is the HANLIN_HOME's (`data/kv-cache`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from hanlin.engine.chat.stream import ChatMessage, ChatSession, stream_chat
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.kv_state_store import KVStateStore
from hanlin.engine.runtime.loader import LoadOptions, load_model


def greedy(max_tokens: int) -> Sampling:
    return Sampling(
        temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0, max_tokens=max_tokens
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mode", choices=("chat-save", "restore", "cold"), required=True)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    sampling = greedy(int(spec.get("max_tokens", 16)))
    started = time.perf_counter()
    model = load_model(
        args.model,
        options=LoadOptions(n_ctx=spec.get("n_ctx"), threads=spec.get("threads", 1)),
    )
    load_s = time.perf_counter() - started
    store = KVStateStore()
    out: dict = {"load_s": load_s}
    try:
        if args.mode == "chat-save":
            session = ChatSession(model, system=spec.get("system"), sampling=sampling)
            for text in spec["turns"]:
                session.send(text)
            saved = store.save(model)
            out["saved"] = None if saved is None else {
                "path": str(saved.path), "tokens": saved.tokens, "bytes": saved.size_bytes,
                "seconds": saved.seconds,
            }
            messages = session.messages()
            out["history"] = [[m.role, m.content] for m in messages]
        else:
            messages = [ChatMessage(role, content) for role, content in spec["history"]]
        reply = stream_chat(
            model,
            [*messages, ChatMessage("user", spec["next"])],
            sampling=sampling,
            kv_store=store if args.mode == "restore" else None,
        )
        out["answer"] = {"content": reply.content, "stats": dataclasses.asdict(reply.stats)}
        out["answer"]["stats"]["evaluated_tokens"] = reply.stats.evaluated_tokens
        out["session_tokens"] = len(model.session.tokens)
    finally:
        model.close()
    args.out.write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
