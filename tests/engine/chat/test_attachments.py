"""Files and folders as context: text read with its path and language, binary and huge files
refused with a reason, folders filtered by .gitignore, token counts from the real tokenizer,
and attachments kept with their message through a reopened history database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanlin.engine.chat.attachments import (
    DEFAULT_LIMITS,
    Attachment,
    AttachmentError,
    AttachmentLimits,
    compose_user_message,
    estimate_tokens,
    language_for,
    list_project_files,
    model_token_counter,
    project_root,
    read_file,
    read_paths,
    recount,
    working_folder,
)
from hanlin.engine.chat.history import History

CODE = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small git work tree with ignored files, dependencies and a virtualenv."""
    root = tmp_path / "proj"
    (root / ".git" / "info").mkdir(parents=True)
    write(root / ".git" / "info" / "exclude", "local-notes.md\n")
    write(root / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(root / ".gitignore", "# build output\n*.log\nbuild/\n!keep.log\n/dist\n")
    write(root / "README.md", "# proj\n")
    write(root / "src" / "app.py", CODE)
    write(root / "src" / "debug.log", "noise\n")
    write(root / "src" / "keep.log", "kept on purpose\n")
    write(root / "src" / "build" / "gen.py", "x = 1\n")
    write(root / "src" / "sub" / ".gitignore", "secret.txt\n")
    write(root / "src" / "sub" / "secret.txt", "hunter2\n")
    write(root / "src" / "sub" / "util.ts", "export const one = 1;\n")
    write(root / "src" / "logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(root / "dist" / "out.js", "minified()\n")
    write(root / "local-notes.md", "mine\n")
    write(root / "node_modules" / "left-pad" / "index.js", "module.exports = 1;\n")
    write(root / ".venv" / "lib" / "site.py", "venv = True\n")
    write(root / "env2" / "pyvenv.cfg", "home = /usr/bin\n")
    write(root / "env2" / "lib" / "mod.py", "venv = True\n")
    return root


# ------------------------------------------------------------------------------ one file


def test_a_text_file_goes_in_with_its_path_language_and_token_count(repo: Path) -> None:
    a = read_file(repo / "src" / "app.py")
    assert a.path == str(repo / "src" / "app.py")
    assert a.label == "src/app.py"  # inside its git work tree
    assert a.language == "python"
    assert a.text == CODE and a.size_bytes == len(CODE.encode())
    assert a.tokens_estimated and a.tokens == estimate_tokens(a.block() + "\n\n") > 10
    assert a.block() == f"File: src/app.py\n```python\n{CODE}```"
    message = compose_user_message("What does greet do?", [a])
    assert message == f"File: src/app.py\n```python\n{CODE}```\n\nWhat does greet do?"
    assert compose_user_message("", [a]) == a.block()
    assert compose_user_message("just text", []) == "just text"


def test_languages_come_from_pygments_by_file_name() -> None:
    assert language_for("x.py") == "python"
    assert language_for("index.ts") == "typescript"
    assert language_for("Makefile") == "make"
    assert language_for("Dockerfile") == "docker"
    assert language_for("main.rs") == "rust"
    assert language_for("CMakeLists.txt") == "cmake"  # an exact name beats *.txt
    assert language_for("x.h") == "c" and language_for("x.sql") == "sql"
    assert language_for("notes.unknownext") == ""


def test_text_is_normalised_and_a_markdown_fence_cannot_close_the_block(tmp_path: Path) -> None:
    doc = write(tmp_path / "doc.md", "\ufeffIntro\r\n```python\r\nx = 1\r\n```\r\nend")
    a = read_file(doc, cwd=tmp_path)
    assert a.label == "doc.md"  # relative to the current folder outside a work tree
    assert a.text == "Intro\n```python\nx = 1\n```\nend"  # BOM and CRLF gone
    assert a.block() == f"File: doc.md\n````markdown\n{a.text}\n````"


def test_binary_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    png = write(tmp_path / "logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(AttachmentError) as info:
        read_file(png)
    assert "binary file" in info.value.message and "NUL byte at offset 8" in info.value.message
    assert info.value.hint and "text files" in info.value.hint
    latin1 = write(tmp_path / "old.txt", "café".encode("latin-1"))
    with pytest.raises(AttachmentError) as info:
        read_file(latin1)
    assert "not UTF-8 text" in info.value.message and "0xe9 at offset 3" in info.value.message
    assert "iconv" in (info.value.hint or "")


def test_huge_files_are_refused_by_size_and_by_tokens(tmp_path: Path) -> None:
    big = write(tmp_path / "big.py", "x = 1\n" * (DEFAULT_LIMITS.max_file_bytes // 6 + 10))
    with pytest.raises(AttachmentError) as info:
        read_file(big)
    assert "over the 524 KB limit for one file" in info.value.message
    small = write(tmp_path / "small.py", CODE * 20)
    with pytest.raises(AttachmentError) as info:
        read_file(small, limits=AttachmentLimits(max_file_tokens=50))
    assert "over the 50-token limit" in info.value.message and "about " in info.value.message


def test_missing_paths_and_folders_given_as_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AttachmentError, match="there is no such file"):
        read_file(tmp_path / "nope.py")
    with pytest.raises(AttachmentError, match="it is a folder"):
        read_file(tmp_path)
    with pytest.raises(AttachmentError, match="there is no such file"):
        read_paths([tmp_path / "nope.py"])


# ------------------------------------------------------------------------------ folders


def test_a_folder_is_filtered_by_gitignore_and_skips_deps_and_virtualenvs(repo: Path) -> None:
    got = read_paths([repo])
    labels = [a.label for a in got.attachments]
    assert labels == ["README.md", "src/app.py", "src/keep.log", "src/sub/util.ts"]
    assert [a.language for a in got.attachments] == ["markdown", "python", "", "typescript"]
    # the binary file inside is skipped with its reason, not a failure
    assert [(Path(s.path).name, s.reason.split(" (")[0]) for s in got.skipped] == [
        ("logo.png", "it is a binary file")
    ]
    assert got.tokens == sum(a.tokens for a in got.attachments)


def test_a_sub_folder_follows_the_gitignore_files_above_it(repo: Path) -> None:
    got = read_paths([repo / "src"])
    assert [a.label for a in got.attachments] == ["src/app.py", "src/keep.log", "src/sub/util.ts"]


def test_outside_a_work_tree_labels_start_at_the_attached_folder(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    write(folder / ".gitignore", "draft*\n")
    write(folder / "a.txt", "alpha\n")
    write(folder / "draft1.txt", "draft\n")
    write(folder / "deep" / "b.toml", "b = 2\n")
    got = read_paths([folder], cwd=tmp_path / "elsewhere")
    assert [a.label for a in got.attachments] == ["notes/a.txt", "notes/deep/b.toml"]


def test_files_given_twice_are_attached_once_and_caps_cover_the_whole_set(repo: Path) -> None:
    app = repo / "src" / "app.py"
    got = read_paths([app, repo / "src", "src/app.py"], cwd=repo)
    assert [a.label for a in got.attachments].count("src/app.py") == 1
    again = read_paths([app], already=got.attachments)
    assert again.attachments == ()
    with pytest.raises(AttachmentError, match="more than the 2 one message may carry"):
        read_paths([repo / "src"], limits=AttachmentLimits(max_files=2))
    with pytest.raises(AttachmentError, match="tokens together, over the 20-token limit"):
        read_paths([app, repo / "README.md"], limits=AttachmentLimits(max_total_tokens=20))
    empty = repo / "only-binary"
    write(empty / "a.bin", b"\x00\x01")
    with pytest.raises(AttachmentError, match="no text files to attach"):
        read_paths([empty])


def test_file_completion_lists_the_work_tree_without_ignored_files(repo: Path) -> None:
    assert project_root(repo / "src" / "sub" / "util.ts") == repo
    assert working_folder([repo / "README.md", repo / "src" / "app.py"]) == repo
    assert working_folder([]) is None
    files = list_project_files(repo)
    assert "src/app.py" in files and "src/logo.png" in files
    assert not [f for f in files if f.startswith(("node_modules", ".venv", "env2", "dist"))]
    assert "src/debug.log" not in files and "src/sub/secret.txt" not in files
    assert list_project_files(repo, limit=2) == files[:2]


# ------------------------------------------------------------------------------ tokenizer


def test_counts_with_a_tokenizer_and_recount_once_the_model_is_loaded(repo: Path) -> None:
    def words(text: str) -> int:
        return len(text.split())

    a = read_file(repo / "src" / "app.py", count_tokens=words)
    assert a.tokens == words(a.block() + "\n\n") and not a.tokens_estimated
    estimated = read_file(repo / "src" / "app.py")
    (counted,) = recount([estimated], words)
    assert counted == a
    with pytest.raises(AttachmentError, match="over the 3-token limit"):
        recount([estimated], words, AttachmentLimits(max_file_tokens=3))


@pytest.mark.slow
def test_token_count_is_what_the_real_model_evaluates(smollm2_path: Path, repo: Path) -> None:
    """With SmolLM2's own tokenizer the count is what the attachment adds to the prompt."""
    from hanlin.engine.chat.template import ChatPrompter
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    model = load_model(smollm2_path, options=LoadOptions(n_ctx=2048, threads=1))
    try:
        count = model_token_counter(model)
        a = read_file(repo / "src" / "app.py", count_tokens=count)
        assert not a.tokens_estimated
        assert a.tokens == len(model.session.tokenize(a.block() + "\n\n"))
        # the estimate is in the same range as the real count
        assert 0.7 * a.tokens <= estimate_tokens(a.block() + "\n\n") <= 1.4 * a.tokens

        class Msg:
            def __init__(self, content: str) -> None:
                self.role, self.content = "user", content

        prompter = ChatPrompter(model, model.behavior, True)
        plain, _ = prompter.prompt([Msg("What does greet do?")])
        with_file, text = prompter.prompt([Msg(compose_user_message("What does greet do?", [a]))])
        assert "File: src/app.py\n```python\ndef greet" in text
        assert abs(len(with_file) - len(plain) - a.tokens) <= 2
    finally:
        model.close()


# ------------------------------------------------------------------------------ history


def test_attachments_round_trip_through_a_reopened_history(repo: Path) -> None:
    app = repo / "src" / "app.py"
    sent = read_paths([app, repo / "src" / "sub"]).attachments
    history = History()
    conv = history.create()
    user = history.append(conv.id, "user", "Review these", attachments=sent)
    history.append(conv.id, "assistant", "Looks fine.")
    only_files = history.create()
    history.append(only_files.id, "user", "", attachments=sent[:1])
    history.close()

    app.write_text("changed on disk\n", encoding="utf-8")  # the prompt keeps what was sent
    with History() as reopened:
        (first, answer) = reopened.messages(conv.id)
        assert first.id == user.id and first.attachments == sent and answer.attachments == ()
        assert [a.label for a in first.attachments] == ["src/app.py", "src/sub/util.ts"]
        assert first.attachments[0].text == CODE
        assert reopened.message(user.id).attachments == sent
        turns = reopened.model_turns(conv.id)
        assert turns[0] == ("user", compose_user_message("Review these", sent))
        assert turns[1] == ("assistant", "Looks fine.")
        assert reopened.get(conv.id).title == "Review these"
        assert reopened.get(only_files.id).title == "src/app.py"
        exported = reopened.export_json(conv.id)
        files = exported["messages"][0]["attachments"]
        assert [Attachment.from_dict(f) for f in files] == list(sent)
        json.dumps(exported)  # serialisable
        assert "_Attached `src/app.py`" in reopened.export_markdown(conv.id)
        # an edit truncates the message and its attachments with it
        reopened.truncate_after(conv.id, user.id, inclusive=True)
        assert reopened.messages(conv.id) == []
