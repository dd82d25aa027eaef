"""A bounded ring of context chunks from other documents of the same workspace.

Code completion gets better when the model sees the code the user worked on
recently in other files (llama.vscode's "ring buffer" of extra context). The
chunks go *before* the current file in the prompt, so their order must stay the
same from one keystroke to the next: otherwise the KV cache's common prefix
breaks and every request re-reads everything. Hence:

- a chunk enters the ring when a document is opened, saved or left, never on
  every keystroke;
- chunks keep their insertion order (oldest first); a chunk that is already in
  the ring (or very similar to one) is not added again, so re-opening a file
  does not reshuffle the prompt;
- the ring is bounded by a number of chunks and a total number of characters;
  the *stalest* chunk is evicted first: the one least recently added or seen again
  (re-adding a held chunk marks it fresh without moving it), never the chunk just added;
- a new chunk changes the prompt in the middle, so every token after it must be
  evaluated again: callers can `stage` chunks as they come and `commit_staged()` them
  in idle time, just before warming the prompt (the engine's `warm`), so no keystroke
  pays for it. Evicting a chunk only removes tokens, which the engine's shifted-KV
  reuse (engine/completion/kv_shift.py) handles without re-evaluating what follows.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ContextChunk", "ContextRing", "chunk_similarity"]


@dataclass(frozen=True, slots=True)
class ContextChunk:
    """A few lines of another file: its name (path or URI) and the text."""

    filename: str
    text: str


def _line_set(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip()}


def chunk_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the non-blank lines of two chunks (0 = disjoint, 1 = same)."""
    la, lb = _line_set(a), _line_set(b)
    if not la and not lb:
        return 1.0
    return len(la & lb) / len(la | lb)


def _digest(chunk: ContextChunk) -> str:
    return hashlib.blake2b(f"{chunk.filename}\0{chunk.text}".encode(), digest_size=16).hexdigest()


class ContextRing:
    """Recently seen chunks of workspace documents, oldest first, bounded in size.

    Thread-safe: the language server adds documents from its event loop while
    completion requests read the chunks from worker threads.
    """

    def __init__(
        self,
        *,
        max_chunks: int = 16,
        chunk_lines: int = 64,
        max_chars: int = 12_000,
        similarity_threshold: float = 0.9,
    ) -> None:
        if max_chunks < 1 or chunk_lines < 1 or max_chars < 1:
            raise ValueError("max_chunks, chunk_lines and max_chars must be positive")
        self.max_chunks = max_chunks
        self.chunk_lines = chunk_lines
        self.max_chars = max_chars
        self.similarity_threshold = similarity_threshold
        self._chunks: list[ContextChunk] = []
        self._digests: set[str] = set()
        #: digest -> tick of its latest add (or re-add); the lowest is the stalest
        self._fresh: dict[str, int] = {}
        self._tick = 0
        self._staged: list[ContextChunk] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)

    @property
    def total_chars(self) -> int:
        with self._lock:
            return sum(len(c.text) for c in self._chunks)

    def _window(self, text: str, cursor_line: int | None) -> str:
        lines = text.splitlines(keepends=True)
        if len(lines) <= self.chunk_lines:
            return text
        if cursor_line is None:
            start = 0
        else:
            # Centre the window on the cursor, aligned to half a chunk so that
            # moving the cursor a few lines picks the *same* chunk (dedupe hits).
            half = max(1, self.chunk_lines // 2)
            aligned = (max(0, cursor_line) // half) * half
            start = max(0, min(len(lines) - self.chunk_lines, aligned - half))
        return "".join(lines[start : start + self.chunk_lines])

    def add_document(self, filename: str, text: str, cursor_line: int | None = None) -> None:
        """Take the chunk of `text` around `cursor_line` (or its head) into the ring."""
        chunk_text = self._window(text, cursor_line)
        if not chunk_text.strip():
            return
        self.add_chunk(ContextChunk(filename, chunk_text))

    def add_chunk(self, chunk: ContextChunk) -> bool:
        """Add one chunk unless it duplicates one already held; True if added."""
        text = chunk.text
        if len(text) > self.max_chars:
            text = text[: self.max_chars]
            chunk = ContextChunk(chunk.filename, text)
        digest = _digest(chunk)
        with self._lock:
            self._tick += 1
            if digest in self._digests:
                self._fresh[digest] = self._tick
                return False
            for held in self._chunks:
                if chunk_similarity(held.text, text) >= self.similarity_threshold:
                    self._fresh[_digest(held)] = self._tick
                    return False
            self._chunks.append(chunk)
            self._digests.add(digest)
            self._fresh[digest] = self._tick
            self._evict_locked(keep=digest)
            return True

    def _evict_locked(self, keep: str) -> None:
        while len(self._chunks) > self.max_chunks or (
            len(self._chunks) > 1 and sum(len(c.text) for c in self._chunks) > self.max_chars
        ):
            candidates = [c for c in self._chunks if _digest(c) != keep]
            if not candidates:
                return
            old = min(candidates, key=lambda c: self._fresh.get(_digest(c), 0))
            self._chunks.remove(old)
            self._digests.discard(_digest(old))
            self._fresh.pop(_digest(old), None)

    def stage(self, filename: str, text: str, cursor_line: int | None = None) -> None:
        """Queue `add_document` for the next `commit_staged()` (idle time)."""
        chunk_text = self._window(text, cursor_line)
        if chunk_text.strip():
            with self._lock:
                self._staged.append(ContextChunk(filename, chunk_text))

    @property
    def staged(self) -> int:
        with self._lock:
            return len(self._staged)

    def commit_staged(self) -> int:
        """Add the staged chunks (oldest first); returns how many entered the ring."""
        with self._lock:
            staged, self._staged = self._staged, []
        return sum(self.add_chunk(chunk) for chunk in staged)

    def remove(self, filename: str) -> None:
        """Forget every chunk of `filename` (e.g. the file was deleted)."""
        with self._lock:
            kept = [c for c in self._chunks if c.filename != filename]
            self._chunks = kept
            self._digests = {_digest(c) for c in kept}
            self._fresh = {d: t for d, t in self._fresh.items() if d in self._digests}
            self._staged = [c for c in self._staged if c.filename != filename]

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._digests.clear()
            self._fresh.clear()
            self._staged.clear()

    def chunks(self, exclude: str | None = None) -> list[ContextChunk]:
        """The held chunks, oldest first; chunks of `exclude` (the current file) left out."""
        with self._lock:
            return [c for c in self._chunks if exclude is None or c.filename != exclude]

    def extend(self, chunks: Sequence[ContextChunk]) -> None:
        for chunk in chunks:
            self.add_chunk(chunk)
