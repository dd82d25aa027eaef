"""Files and folders as context for a chat message: read, checked, counted, laid out.

Why one module: the terminal (`hanlin chat --file PATH`), the window (attach button, drag
and drop, `@file`) and a server all need the same answers to the same questions — is this
file text, is it too big, which files of a folder count, how many tokens does it cost, and
what exactly goes into the prompt — so a conversation started in one front end reads the
same in another, and a reopened conversation re-renders the prompt it had.

- A file becomes an `Attachment`: its path on disk (to open it again), the label the
  prompt shows (the path inside its project: relative to the git work tree it is in, else
  to the folder that was attached, else the current folder or `~`), its language
  (Pygments' lexer for the file name, as the fence's tag), its size, its token count —
  with the model's tokenizer when one is loaded (`TokenCounter`), an estimate otherwise
  (`tokens_estimated`) — and the text as sent (line endings normalised).
- Refused with a reason (`AttachmentError`, message + hint): missing or unreadable paths,
  binary files (NUL bytes), text that is not UTF-8, files over the byte or the token cap,
  and sets over the total caps (`AttachmentLimits`; `DEFAULT_LIMITS`).
- A folder is walked with its `.gitignore` files honoured (those of the folder, its
  sub-folders and its ancestors up to the work tree's root, plus `.git/info/exclude`,
  through the `pathspec` package's gitignore rules), skipping `.git`, `node_modules`,
  virtualenvs and tool caches; binary and oversized files inside it are skipped with a
  reason (`Skipped`) rather than failing the whole folder.
- `compose_user_message(text, attachments)` is the prompt layout: one fenced block per
  file, headed by its path, before the user's text, in the user message. Its fence is
  longer than any backtick run in the file, so a Markdown file cannot close it early.

History stores each attachment with its message (history.py), text included, so the
prompt stays what was sent even after the file changes on disk.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.units import KiB, MiB, format_bytes

__all__ = [
    "DEFAULT_LIMITS",
    "SKIPPED_FOLDERS",
    "Attachment",
    "AttachmentError",
    "AttachmentLimits",
    "AttachmentSet",
    "Skipped",
    "TokenCounter",
    "attachment_tokens",
    "compose_user_message",
    "estimate_tokens",
    "language_for",
    "list_project_files",
    "model_token_counter",
    "project_root",
    "read_file",
    "read_paths",
    "recount",
    "working_folder",
]

#: text -> number of tokens (the model's tokenizer)
TokenCounter = Callable[[str], int]

#: folders never walked into: version control, dependencies, virtualenvs, tool caches
SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".gradle",
        ".idea",
    }
)
_SKIPPED_FILES = frozenset({".DS_Store", "Thumbs.db"})
#: a folder walk looks at no more entries than this (a home folder attached by mistake)
_MAX_WALK_ENTRIES = 50_000


class AttachmentError(HanlinError):
    """A file or folder cannot be attached; the message says why and the hint what to do."""


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """Caps on what is attached: per file and for everything sent with one message."""

    #: a file larger than this on disk is refused before it is read
    max_file_bytes: int = 512 * KiB
    #: a file whose block costs more tokens than this is refused
    max_file_tokens: int = 32_768
    #: every attachment of one message together
    max_total_bytes: int = 2 * MiB
    max_total_tokens: int = 131_072
    #: files one message may carry (a folder's files count one by one)
    max_files: int = 200


DEFAULT_LIMITS = AttachmentLimits()


@dataclass(frozen=True, slots=True)
class Attachment:
    """One file as it went (or goes) into the prompt."""

    #: absolute path on disk when it was attached (a chip opens it)
    path: str
    #: the path the prompt shows: inside its project, e.g. `src/app.py`
    label: str
    #: the fence's language tag (a Pygments alias, e.g. "python"); "" when unknown
    language: str
    #: bytes on disk when attached
    size_bytes: int
    #: tokens of its block in the prompt
    tokens: int
    #: True: `tokens` is an estimate (no model's tokenizer was at hand)
    tokens_estimated: bool
    #: the text as sent
    text: str

    @property
    def name(self) -> str:
        return Path(self.label).name or self.label

    def block(self) -> str:
        """The attachment in the prompt: its path, then the text in a fenced block."""
        longest = max((len(run) for run in re.findall(r"`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)
        body = self.text if self.text.endswith("\n") or not self.text else self.text + "\n"
        return f"File: {self.label}\n{fence}{self.language}\n{body}{fence}"

    def to_dict(self, *, text: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "label": self.label,
            "language": self.language,
            "size_bytes": self.size_bytes,
            "tokens": self.tokens,
            "tokens_estimated": self.tokens_estimated,
        }
        if text:
            out["text"] = self.text
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(
            path=str(data["path"]),
            label=str(data.get("label") or data["path"]),
            language=str(data.get("language") or ""),
            size_bytes=int(data.get("size_bytes") or 0),
            tokens=int(data.get("tokens") or 0),
            tokens_estimated=bool(data.get("tokens_estimated", False)),
            text=str(data.get("text") or ""),
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file of an attached folder that was left out, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class AttachmentSet:
    attachments: tuple[Attachment, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def tokens(self) -> int:
        return sum(a.tokens for a in self.attachments)

    @property
    def size_bytes(self) -> int:
        return sum(a.size_bytes for a in self.attachments)


# --------------------------------------------------------------------------- layout

_SEPARATOR = "\n\n"


def compose_user_message(text: str, attachments: Sequence[Attachment]) -> str:
    """The user message the model sees: each attachment's block, then the user's text."""
    if not attachments:
        return text
    blocks = _SEPARATOR.join(a.block() for a in attachments)
    return f"{blocks}{_SEPARATOR}{text}" if text else blocks


def attachment_tokens(attachment_block: str, count_tokens: TokenCounter | None) -> tuple[int, bool]:
    """Tokens one block costs in the prompt (with its separator); (count, estimated)."""
    piece = attachment_block + _SEPARATOR
    if count_tokens is not None:
        try:
            return int(count_tokens(piece)), False
        except HanlinError:
            pass  # the tokenizer could not take it: an estimate is still useful
    return estimate_tokens(piece), True


# Runs of ASCII letters and digits (a long one counts a piece per 8 characters), any other
# single non-space character, and line breaks: on this repository's Python, Markdown and
# TOML files within -7%..+8% (10th..90th percentile) of SmolLM2's tokenizer, median +0.6%;
# models with larger vocabularies (Qwen) use fewer tokens, so this errs on the high side.
_PIECE = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]|\n")
_ESTIMATE_FACTOR = 1.0


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate of the tokens `text` costs (a little high, never 0 for text)."""
    if not text:
        return 0
    pieces = 0
    for match in _PIECE.finditer(text):
        word = match.group()
        pieces += 1 + (len(word) - 1) // 8 if len(word) > 8 else 1
    return max(1, math.ceil(pieces * _ESTIMATE_FACTOR))


def model_token_counter(model: Any) -> TokenCounter:
    """A counter over a loaded model's tokenizer (`LoadedModel.session.tokenize`).

    Counts plain text: a file's `<|im_start|>` stays text, as it does in the prompt.
    """
    session = model.session

    def count(text: str) -> int:
        return len(session.tokenize(text, add_special=False, parse_special=False))

    return count


# --------------------------------------------------------------------------- language


@lru_cache(maxsize=1)
def _lexer_patterns() -> tuple[tuple[str, str, str], ...]:
    """(file-name pattern, Pygments lexer name, its first alias) of the built-in lexers.

    From Pygments' lexer table alone (`get_all_lexers(plugins=False)`): no lexer module is
    imported and no installed package is scanned for plugins, which costs a second here.
    """
    from pygments.lexers import get_all_lexers

    out = []
    for name, aliases, patterns, _mimetypes in get_all_lexers(plugins=False):
        if aliases:
            out.extend((pattern, name, aliases[0]) for pattern in patterns)
    return tuple(out)


#: where Pygments' tie-break picks a rare language for a common extension (`.pl`: Prolog)
_PREFERRED = {".pl": "perl", ".sql": "sql"}


@lru_cache(maxsize=1024)
def language_for(filename: str) -> str:
    """The fence tag for a file name from Pygments' lexers ("python"), or "" if unknown.

    A pattern naming the file exactly (`Makefile`, `CMakeLists.txt`) beats a wildcard;
    among several wildcards (`*.h`: C, Objective-C) the lexer Pygments ranks first wins,
    but for `_PREFERRED` extensions.
    """
    name = Path(filename).name
    matches = [
        (pattern, alias)
        for pattern, _lexer, alias in _lexer_patterns()
        if fnmatch.fnmatchcase(name, pattern)
    ]
    if not matches:
        return ""
    exact = [alias for pattern, alias in matches if not any(c in pattern for c in "*?[")]
    if exact:
        return exact[0]
    aliases = list(dict.fromkeys(alias for _pattern, alias in matches))
    if len(aliases) == 1:
        return aliases[0]
    from pygments.lexers import find_lexer_class_by_name
    from pygments.util import ClassNotFound

    preferred = _PREFERRED.get(Path(name).suffix.lower())
    if preferred in aliases:
        return preferred

    def rank(alias: str) -> tuple[float, str]:  # Pygments' own order: priority, class name
        try:
            cls = find_lexer_class_by_name(alias)
        except ClassNotFound:
            return (-1.0, "")
        return (float(getattr(cls, "priority", 0) or 0), cls.__name__)

    return max(aliases, key=rank)


# --------------------------------------------------------------------------- paths


def project_root(path: Path) -> Path | None:
    """The git work tree `path` lies in (the nearest folder holding `.git`), or None."""
    here = path if path.is_dir() else path.parent
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _label(path: Path, base: Path | None, cwd: Path) -> str:
    """The path the prompt shows: inside its project, else short and unambiguous."""
    candidates = [c for c in (project_root(path), base, cwd) if c is not None]
    for root in candidates:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        if str(rel) not in ("", "."):
            return rel.as_posix()
    home = Path.home()
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return path.as_posix()


def working_folder(paths: Iterable[str | Path]) -> Path | None:
    """Where `@file` completion looks: the project (else the folder) of the newest path."""
    newest = None
    for p in paths:
        newest = Path(p)
    if newest is None:
        return None
    root = project_root(newest)
    if root is not None:
        return root
    if newest.is_dir():
        return newest
    return newest.parent if newest.parent.is_dir() else None


# --------------------------------------------------------------------------- one file


def _refuse(path: Path, reason: str, hint: str) -> AttachmentError:
    return AttachmentError(f"Cannot attach {path}: {reason}", hint)


def _decode(path: Path, data: bytes) -> str:
    """Bytes to text, or AttachmentError: NUL bytes mean binary, and text must be UTF-8."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise _refuse(
            path,
            f"it is a binary file (a NUL byte at offset {nul})",
            "attach source or text files; binary files cannot go into a prompt",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            path,
            f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} "
            "cannot be decoded)",
            "convert it to UTF-8 (e.g. `iconv -t UTF-8`), or attach another file",
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_file(
    path: str | Path,
    *,
    limits: AttachmentLimits = DEFAULT_LIMITS,
    count_tokens: TokenCounter | None = None,
    base: Path | None = None,
    cwd: Path | None = None,
) -> Attachment:
    """One text file as an attachment; AttachmentError (with the reason) otherwise.

    `base` is the attached folder a file was found in (its label starts there when the
    file is in no git work tree); `count_tokens` the model's tokenizer, if loaded.
    """
    p = Path(path).expanduser()
    where = (cwd or Path.cwd()).absolute()
    p = p if p.is_absolute() else where / p
    p = Path(os.path.normpath(p))
    try:
        info = p.stat()
    except FileNotFoundError:
        raise _refuse(p, "there is no such file", "check the path") from None
    except OSError as exc:
        raise _refuse(p, exc.strerror or str(exc), "check the path and its permissions") from exc
    if p.is_dir():
        raise _refuse(p, "it is a folder", "attach it as a folder (its files are read)")
    if not p.is_file():
        raise _refuse(p, "it is not a regular file", "attach a text file")
    if info.st_size > limits.max_file_bytes:
        raise _refuse(
            p,
            f"it is {format_bytes(info.st_size)}, over the "
            f"{format_bytes(limits.max_file_bytes)} limit for one file",
            "attach a smaller file, or paste the part that matters",
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise _refuse(p, exc.strerror or str(exc), "check its permissions") from exc
    text = _decode(p, data)
    label = _label(p, base, where)
    attachment = Attachment(
        path=str(p),
        label=label,
        language=language_for(p.name),
        size_bytes=len(data),
        tokens=0,
        tokens_estimated=True,
        text=text,
    )
    return _counted(attachment, count_tokens, limits)


def _counted(
    attachment: Attachment, count_tokens: TokenCounter | None, limits: AttachmentLimits
) -> Attachment:
    tokens, estimated = attachment_tokens(attachment.block(), count_tokens)
    if tokens > limits.max_file_tokens:
        about = "about " if estimated else ""
        raise _refuse(
            Path(attachment.path),
            f"it is {about}{tokens:,} tokens, over the {limits.max_file_tokens:,}-token "
            "limit for one file",
            "attach a smaller file, or paste the part that matters",
        )
    return replace(attachment, tokens=tokens, tokens_estimated=estimated)


def recount(
    attachments: Sequence[Attachment],
    count_tokens: TokenCounter | None,
    limits: AttachmentLimits = DEFAULT_LIMITS,
) -> tuple[Attachment, ...]:
    """The same attachments counted again, e.g. with the model's tokenizer once it loaded."""
    counted = tuple(_counted(a, count_tokens, limits) for a in attachments)
    _check_totals(counted, limits)
    return counted


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True, slots=True)
class _Ignore:
    """The rules of one `.gitignore` (or `info/exclude`) and the folder they are relative to."""

    base: Path
    spec: Any  # pathspec.GitIgnoreSpec


def _load_ignore(folder: Path, file: Path) -> _Ignore | None:
    import pathspec

    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return None
    return _Ignore(folder, pathspec.GitIgnoreSpec.from_lines(lines))


def _ignored(path: Path, is_dir: bool, rules: Sequence[_Ignore]) -> bool:
    """Git's verdict: the deepest `.gitignore` with a matching rule decides (`!` re-includes)."""
    verdict = False
    for rule in rules:
        try:
            rel = path.relative_to(rule.base).as_posix()
        except ValueError:
            continue
        result = rule.spec.check_file(rel + "/" if is_dir else rel)
        if result.include is not None:
            verdict = bool(result.include)
    return verdict


def _is_virtualenv(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").is_file() or (folder / "conda-meta").is_dir()


def _ancestor_rules(folder: Path) -> list[_Ignore]:
    """The ignore rules that apply to `folder` from above: its work tree's, root first."""
    root = project_root(folder)
    if root is None:
        return []
    rules: list[_Ignore] = []
    exclude = root / ".git" / "info" / "exclude"
    if exclude.is_file():
        found = _load_ignore(root, exclude)
        if found:
            rules.append(found)
    chain = [folder, *folder.parents]
    for above in reversed(chain[1 : chain.index(root) + 1] if root in chain else []):
        found = _load_ignore(above, above / ".gitignore")
        if found:
            rules.append(found)
    return rules


def _walk(folder: Path) -> Iterator[Path]:
    """The files of `folder` that git would not ignore, in path order, skipped folders pruned."""
    inherited = _ancestor_rules(folder)
    seen = 0

    def visit(here: Path, rules: list[_Ignore]) -> Iterator[Path]:
        nonlocal seen
        local = _load_ignore(here, here / ".gitignore")
        if local is not None:
            rules = [*rules, local]
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            seen += 1
            if seen > _MAX_WALK_ENTRIES:
                raise AttachmentError(
                    f"Cannot attach {folder}: it holds more than {_MAX_WALK_ENTRIES:,} "
                    "files and folders",
                    "attach the sub-folder or the files that matter",
                )
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file()
            except OSError:
                continue
            if is_dir:
                if entry.name in SKIPPED_FOLDERS or _is_virtualenv(path):
                    continue
                if not _ignored(path, True, rules):
                    yield from visit(path, rules)
            elif (
                is_file
                and entry.name not in _SKIPPED_FILES
                and entry.name != ".gitignore"
                and not _ignored(path, False, rules)
            ):
                yield path

    yield from visit(folder, inherited)


def list_project_files(root: str | Path, *, limit: int = 5_000) -> list[str]:
    """Paths (relative to `root`, `/`-separated) of the files `@file` completion offers."""
    base = Path(root)
    out: list[str] = []
    try:
        for path in _walk(base):
            out.append(path.relative_to(base).as_posix())
            if len(out) >= limit:
                break
    except AttachmentError:
        pass  # a huge tree: what was listed so far is still useful
    return out


def _read_folder(
    folder: Path,
    limits: AttachmentLimits,
    count_tokens: TokenCounter | None,
    cwd: Path,
) -> tuple[list[Attachment], list[Skipped]]:
    files = list(_walk(folder))
    if len(files) > limits.max_files:
        raise AttachmentError(
            f"Cannot attach {folder}: it holds {len(files):,} files that .gitignore does not "
            f"exclude, more than the {limits.max_files:,} one message may carry",
            "attach a sub-folder or the files that matter, or ignore the rest in .gitignore",
        )
    attachments: list[Attachment] = []
    skipped: list[Skipped] = []
    for path in files:
        try:
            attachments.append(
                read_file(
                    path, limits=limits, count_tokens=count_tokens, base=folder.parent, cwd=cwd
                )
            )
        except AttachmentError as exc:
            reason = exc.message.split(": ", 1)[-1]
            skipped.append(Skipped(str(path), reason))
    if not attachments:
        why = f" ({len(skipped)} skipped: {skipped[0].reason}…)" if skipped else ""
        raise AttachmentError(
            f"Cannot attach {folder}: it has no text files to attach{why}",
            "attach another folder, or the files themselves",
        )
    return attachments, skipped


def _check_totals(attachments: Sequence[Attachment], limits: AttachmentLimits) -> None:
    if len(attachments) > limits.max_files:
        raise AttachmentError(
            f"Too many files attached: {len(attachments):,}, more than the "
            f"{limits.max_files:,} one message may carry",
            "attach fewer files, or a sub-folder",
        )
    size = sum(a.size_bytes for a in attachments)
    if size > limits.max_total_bytes:
        raise AttachmentError(
            f"The attachments are {format_bytes(size)} together, over the "
            f"{format_bytes(limits.max_total_bytes)} limit for one message",
            "attach fewer or smaller files",
        )
    tokens = sum(a.tokens for a in attachments)
    if tokens > limits.max_total_tokens:
        raise AttachmentError(
            f"The attachments are {tokens:,} tokens together, over the "
            f"{limits.max_total_tokens:,}-token limit for one message",
            "attach fewer or smaller files",
        )


def read_paths(
    paths: Iterable[str | Path],
    *,
    limits: AttachmentLimits = DEFAULT_LIMITS,
    count_tokens: TokenCounter | None = None,
    cwd: Path | None = None,
    already: Sequence[Attachment] = (),
) -> AttachmentSet:
    """Files and folders as attachments, in the given order (a folder's files sorted).

    A file that cannot be attached raises AttachmentError; inside a folder it is skipped
    with its reason instead. A file given twice (or already in `already`, the attachments
    the message has so far) is attached once. The caps apply to `already` plus the new ones.
    """
    where = (cwd or Path.cwd()).absolute()
    have = {a.path for a in already}
    out: list[Attachment] = []
    skipped: list[Skipped] = []
    for raw in paths:
        p = Path(raw).expanduser()
        p = Path(os.path.normpath(p if p.is_absolute() else where / p))
        if p.is_dir():
            found, left_out = _read_folder(p, limits, count_tokens, where)
            skipped.extend(left_out)
        else:
            found = [read_file(p, limits=limits, count_tokens=count_tokens, cwd=where)]
        for a in found:
            if a.path not in have:
                have.add(a.path)
                out.append(a)
    _check_totals([*already, *out], limits)
    return AttachmentSet(tuple(out), tuple(skipped))
