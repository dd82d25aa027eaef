"""The completion benchmark's own machinery: corpus fetching, edit replay, the peer's rules.

The figures themselves are benchmarks, not tests; what is tested is that the
benchmark measures what it says: the files it picks are real, foreign and chosen by
the seed; every edit pattern sends the server exactly the changes that turn its copy
of the document into the editor's; llama.vscode's client rules behave as in its
source; and a short replay through a real `hanlin-lsp` on a real model works.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from bench import completion_latency
from bench.completion_corpus import CorpusFile, select_corpus
from bench.completion_patterns import PATTERNS, Answer, Editor, Idle, Sample, build_script
from bench.completion_peer import (
    LlamaServer,
    VscodePeer,
    _key,
    _stop_at_block_end,
    should_discard,
    update_suggestion,
)

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"])


class RecordingEditor(Editor):
    """An editor whose "server" is a second copy of each document built from the changes.

    It answers every request with `answer(prefix)`; what matters is that the copy
    built only from `did_open`/`did_change` equals the editor's document every time.
    """

    name = "recording"

    def __init__(self, answer=lambda prefix: "") -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.answer = answer
        self.server_docs: dict[str, str] = {}
        self.requests: list[tuple[str, int, int]] = []
        self.accepted = 0

    def did_open(self, doc: str, text: str, language: str) -> None:
        self.server_docs[doc] = text

    def did_change(self, doc: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        lines = self.server_docs[doc].split("\n")

        def offset(pos: tuple[int, int]) -> int:
            return sum(len(line) + 1 for line in lines[: pos[0]]) + pos[1]

        old = self.server_docs[doc]
        self.server_docs[doc] = old[: offset(start)] + text + old[offset(end) :]

    def did_accept(self) -> None:
        self.accepted += 1

    def complete(self) -> Answer:
        assert self.server_docs[self.active] == "\n".join(self.lines)
        self.requests.append((self.active, self.line, self.character))
        prefix, _ = self.prefix_suffix()
        return Answer(self.answer(prefix), 1.0)


def _py_files(n: int = 2) -> list[CorpusFile]:
    names = ["csv.py", "socket.py", "argparse.py", "pathlib.py"]
    return [CorpusFile(STDLIB / name, "python", "stdlib") for name in names[:n]]


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_every_pattern_keeps_the_server_copy_in_step(pattern: str) -> None:
    editor = RecordingEditor(answer=lambda prefix: "abc()")
    samples: list[Sample] = []
    for k in range(2):
        script = build_script(_py_files(), pattern, k, seed=3, max_keystrokes=8)
        samples += [s for s in (editor.apply(step, f"f{k}", pattern) for step in script) if s]
    assert samples, "a pattern must measure some requests"
    assert len(editor.requests) == len(samples)
    assert not editor.docs, "every pattern closes what it opened"


def test_fim_retypes_the_original_line_with_the_real_code_after_it() -> None:
    files = _py_files(1)
    lines = files[0].text().split("\n")
    editor = RecordingEditor()
    script = build_script(files, "fim", 0, seed=5, max_keystrokes=6)
    for step in script[:-1]:  # all but the first site's Close
        editor.apply(step, "csv.py", "fim")
        if step.__class__.__name__ == "Close":
            break
    doc = next(iter(editor.server_docs))
    typed = editor.server_docs[doc].split("\n")
    row = editor.requests[-1][1]
    assert typed[row].strip() and lines[row].strip().startswith(typed[row].strip())
    assert typed[row + 1 :] == lines[row + 1 :], "the code after the cursor is the file's own"


def test_through_types_what_was_shown_and_accept_inserts_it() -> None:
    # the server shows "QQQ" unless the user just typed a Q; the user types it through
    editor = RecordingEditor(answer=lambda prefix: "" if prefix.endswith("Q") else "QQQ")
    for step in build_script(_py_files(1), "through", 0, seed=2, max_keystrokes=16):
        editor.apply(step, "csv.py", "through")
    assert any("QQQ" in text for text in editor.server_docs.values())

    editor = RecordingEditor(
        answer=lambda prefix: "" if prefix.endswith("ACCEPTED") else "ACCEPTED"
    )
    for step in build_script(_py_files(1), "accept", 0, seed=2, max_keystrokes=5):
        editor.apply(step, "csv.py", "accept")
    assert editor.accepted >= 1
    assert any("ACCEPTED" in text for text in editor.server_docs.values())
    # the read before each accept is the one asked for (`--read-s`)
    reads = {
        step.seconds
        for step in build_script(_py_files(1), "accept", 0, seed=2, max_keystrokes=5, read_s=1.5)
        if isinstance(step, Idle)
    }
    assert 1.5 in reads


def test_peer_rules_follow_llama_vscode() -> None:
    doc = ["def f():", "    x = 1", "    return x", ""]
    # a suggestion that repeats the next line is discarded, a new one is kept
    assert should_discard(["x = 1"], doc, 0, "    ", "")
    assert not should_discard(["y = 2"], doc, 0, "    ", "")
    assert update_suggestion(["foo)", "bar"], ")") == "foo"
    assert update_suggestion(["a", "b"], "") == "a\nb"

    peer = VscodePeer(
        LlamaServer(Path("none.gguf"), threads=1, n_ctx=8, log_path=Path("x")),
        n_predict=8,
        budget_ms=100,
    )
    peer._put(_key("P", "S", "ab"), "cdef")
    assert peer._cached("P", "S", "ab") == "cdef"
    assert peer._cached("P", "S", "abcd") == "ef", "typing through a cached hint hits"
    assert peer._cached("P", "S", "abx") is None


def test_peer_answers_stop_where_hanlins_would() -> None:
    prefix = "def f(x):\n    if x:"
    answer = "\n        return 1\n    return 2\n\ndef g():\n    pass"
    # the block the cursor line opened ends at its own indentation: the rest is cut
    assert _stop_at_block_end(answer, prefix, "\n") == "\n        return 1"
    # inside a body, a dedent below the cursor line ends it (llama-server's n_indent)
    body = "\n    y = 2\n    return y\nprint(f(1))"
    assert _stop_at_block_end(body, "def f(x):\n    x += 1", "\n") == "\n    y = 2\n    return y"
    # on an indentation-only line the prompt is empty: the answer brings the indentation
    fresh = "    y = 2\n    return y\nprint(f(1))"
    assert _stop_at_block_end(fresh, "def f(x):\n", "\n") == "    y = 2\n    return y"


@pytest.mark.slow
def test_corpus_is_real_foreign_files_chosen_by_the_seed() -> None:
    one, again, other = select_corpus(1), select_corpus(1), select_corpus(2)
    assert [f.path for f in one] == [f.path for f in again]
    assert [f.path for f in one] != [f.path for f in other]
    assert len(one) >= 5
    assert sorted(f.language for f in one) == ["c", "javascript", "python", "python", "typescript"]
    for f in one:
        assert f.path.is_file() and len(f.text().splitlines()) >= 150
        assert ROOT / "hanlin" not in f.path.parents and ROOT / "bench" not in f.path.parents
    with pytest.raises(SystemExit, match="no such file"):
        select_corpus(1, [Path("/nonexistent/x.py")])


@pytest.mark.slow
def test_a_short_replay_through_hanlin_lsp_on_smollm2(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    argv = ["--models", "smollm2", "--patterns", "fim,retype", "--max-keystrokes", "2"]
    argv += ["--no-peer", "--no-first-ghost", "--files", str(STDLIB / "csv.py")]
    argv += ["--json", str(out), "--logs", str(tmp_path / "logs")]
    assert completion_latency.main(argv) == 0
    result = json.loads(out.read_text())["models"]["smollm2"]
    samples = result["samples"]["hanlin-lsp"]
    assert {s["pattern"] for s in samples} == {"fim", "retype"}
    assert all(s["latency_ms"] > 0 for s in samples)
    assert all("tokensEvaluated" in s["info"] for s in samples), "stats come from the server"
    assert result["all"]["hanlin"]["n"] == len(samples)
