"""Markdown to Qt rich text for chat messages, with highlighted code blocks.

Why its own module: the chat view re-renders the answer being streamed several
times a second, so rendering must be cheap and pure (text in, HTML out, no
widgets), and code blocks must come out with their raw text kept aside so the
view can offer a copy button per block.

markdown-it-py parses CommonMark (plus tables and strikethrough); code fences are
highlighted by pygments with inline styles (Qt's rich-text engine has no CSS
classes). Each fence gets a header line with its language and a `copy:N` link;
`RenderedMarkdown.code_blocks[N]` is the text that link copies. Links written in the
answer itself become anchors only for http(s) and mailto (`is_safe_link`). An unterminated
fence (the model is still writing it) renders as a code block too.

`StreamingMarkdown` renders an answer as it streams: only its unfinished end is parsed
and rendered again at each update, with exactly the full render's result at the end.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

COPY_SCHEME = "copy:"
#: the only link schemes an answer may open: the model writes the links, so anything that
#: could run a program or read a file (file:, custom scheme handlers, javascript:) is inert
SAFE_LINK_SCHEMES = frozenset({"http", "https", "mailto"})


def is_safe_link(href: str) -> bool:
    """True for an absolute http(s) or mailto link; everything else is shown, not opened."""
    scheme, sep, rest = href.partition(":")
    return bool(sep and rest) and scheme.lower() in SAFE_LINK_SCHEMES


@dataclass(slots=True)
class RenderedMarkdown:
    html: str
    code_blocks: list[str] = field(default_factory=list)
    #: the HTML of each top-level block (paragraph, list, code block, table...), in order;
    #: while an answer streams only the last one changes, so the view re-lays out only it
    segments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RenderCounts:
    """Work done by one renderer: Markdown parses, characters parsed, blocks rendered."""

    parses: int = 0
    chars_parsed: int = 0
    blocks_rendered: int = 0


@dataclass(frozen=True, slots=True)
class _Group:
    """One top-level block of a parse: its first source line and its slice of the tokens."""

    line: int
    start: int
    end: int


def top_level_groups(tokens: list[Any]) -> list[_Group]:
    """Split markdown-it's token stream into top-level blocks (paragraph, list, fence...)."""
    groups: list[_Group] = []
    start = 0
    line: int | None = None
    for i, tok in enumerate(tokens):
        if line is None and tok.map:
            line = tok.map[0]
        # a top-level block ends with its closing token, or is one token (fence, hr)
        if tok.level == 0 and tok.nesting <= 0:
            groups.append(_Group(line or 0, start, i + 1))
            start, line = i + 1, None
    if start < len(tokens):
        groups.append(_Group(line or 0, start, len(tokens)))
    return groups


def fence_language(info: str | None) -> str:
    """The language of a code fence's info string (```python title="x" -> python)."""
    return (info or "").strip().split(" ")[0]


# pygments and markdown-it are imported on first use: a window with no answer to
# show yet (the usual start-up) never pays for them.


@lru_cache(maxsize=2)
def _formatter(dark: bool) -> Any:
    from pygments.formatters import HtmlFormatter

    style = "monokai" if dark else "friendly"
    return HtmlFormatter(noclasses=True, nowrap=True, style=style)


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.lexers.special import TextLexer
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(lang, stripnl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False)


@lru_cache(maxsize=512)
def _highlight(code: str, lang: str, dark: bool) -> str:
    """Highlighted HTML for one code block (cached: a streamed answer re-renders its
    finished blocks many times)."""
    from pygments import highlight
    from pygments.lexers import guess_lexer
    from pygments.lexers.special import TextLexer
    from pygments.util import ClassNotFound

    if lang:
        lexer = _lexer(lang.lower())
    else:
        try:
            lexer = guess_lexer(code) if len(code) > 40 else TextLexer()
        except ClassNotFound:
            lexer = TextLexer()
    return highlight(code, lexer, _formatter(dark)).rstrip("\n")


class MarkdownRenderer:
    """Renders one message's Markdown; keep one per theme and reuse it."""

    def __init__(self, *, dark: bool = False) -> None:
        self.dark = dark
        self._md_instance: Any = None
        #: how much work rendering took (tests and benchmarks compare full and streamed)
        self.counts = RenderCounts()

    @property
    def _md(self) -> Any:
        if self._md_instance is None:
            self._md_instance = self._build()
        return self._md_instance

    def _build(self) -> Any:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
        md.enable(["table", "strikethrough"])
        # a link the model wrote with any other scheme stays literal text (no anchor), so
        # it can neither pose as one of our copy links nor open a file or a program
        md.validateLink = is_safe_link

        # markdown-it binds render rules to its renderer: wrap ours in plain functions
        def fence(_renderer, tokens, idx, options, env) -> str:
            return self._fence(tokens, idx, options, env)

        def code_inline(_renderer, tokens, idx, options, env) -> str:
            return self._code_inline(tokens, idx, options, env)

        md.add_render_rule("fence", fence)
        md.add_render_rule("code_block", fence)
        md.add_render_rule("code_inline", code_inline)
        return md

    def render(self, text: str) -> RenderedMarkdown:
        """The whole message at once (a message shown when a conversation opens)."""
        if not text:
            return RenderedMarkdown("")
        env: dict[str, list[str]] = {"blocks": []}
        tokens = self._parse(text, env)
        segments = [self._render_group(tokens, g, env) for g in top_level_groups(tokens)]
        return RenderedMarkdown("".join(segments), env["blocks"], segments)

    def _parse(self, text: str, env: dict[str, Any]) -> list[Any]:
        self.counts.parses += 1
        self.counts.chars_parsed += len(text)
        return self._md.parse(text, env)

    def _render_group(self, tokens: list[Any], group: _Group, env: dict[str, Any]) -> str:
        self.counts.blocks_rendered += 1
        md = self._md
        return md.renderer.render(tokens[group.start : group.end], md.options, env)

    def _fence(self, tokens, idx, _options, env) -> str:
        tok = tokens[idx]
        lang = fence_language(tok.info)
        code = tok.content
        blocks: list[str] = env["blocks"]
        n = len(blocks)
        blocks.append(code)
        return self.code_html(code, lang, n)

    def code_html(
        self,
        code: str,
        lang: str,
        n: int,
        *,
        head: bool = True,
        tail: bool = True,
        highlight: bool = True,
    ) -> str:
        """One code block (`head`/`tail`: with its header and top margin / its bottom margin).

        A block streamed in pieces (`StreamingMarkdown`) is shown as consecutive pieces,
        the first with the header, the last with the bottom margin, that stack seamlessly;
        the piece still being written is not highlighted yet (`highlight=False`).
        """
        dark = self.dark
        code_bg = "#272822" if dark else "#f6f8fa"
        head_bg = "#3a3b35" if dark else "#e8ebef"
        head_fg = "#c8c8c8" if dark else "#57606a"
        body = _highlight(code, lang, dark) if highlight else html.escape(code.rstrip("\n"))
        label = html.escape(lang or "code")
        top = "4px" if head else "0px"
        bottom = "6px" if tail else "0px"
        header = (
            f'<tr><td style="background:{head_bg}; color:{head_fg};">'
            f'<span style="font-size:small;">{label}</span>'
            f'&nbsp;&nbsp;<a href="{COPY_SCHEME}{n}" style="font-size:small;">Copy</a>'
            f"</td></tr>"
            if head
            else ""
        )
        # pieces of one block stack without the cell padding between them
        pad = ("" if head else "padding-top:0px;") + ("" if tail else "padding-bottom:0px;")
        pad = f' style="{pad}"' if pad else ""
        return (
            f'<table width="100%" cellspacing="0" cellpadding="6" '
            f'style="background:{code_bg}; margin-top:{top}; margin-bottom:{bottom};">'
            f"{header}<tr><td{pad}>"
            f'<pre style="margin:0; white-space:pre-wrap;">{body}</pre>'
            f"</td></tr></table>"
        )

    def _code_inline(self, tokens, idx, _options, _env) -> str:
        bg = "#3a3b35" if self.dark else "#eff1f3"
        text = html.escape(tokens[idx].content)
        return f'<code style="background:{bg};">&nbsp;{text}&nbsp;</code>'


#: a code block being streamed is shown in pieces of this many lines: finished pieces are
#: highlighted and laid out once, only the last one changes (Qt lays out highlighted code
#: slowly: ~0.3 ms a line, so re-laying out a 200-line block each update costs ~60 ms)
CODE_PIECE_LINES = 6


@dataclass(slots=True)
class StreamFrame:
    """What the view shows of an answer being streamed."""

    #: HTML pieces, stacked in order; a piece whose text did not change needs no new layout
    pieces: list[str]
    #: the code blocks so far (what each `copy:N` link copies)
    code_blocks: list[str]


class StreamingMarkdown:
    """Renders an answer as it grows, re-rendering only its unfinished end.

    Markdown's blocks are parsed top to bottom and a block, once the next one has begun,
    never changes again (CommonMark never reopens a closed block). So the blocks before
    the last one are *finished* as soon as the lines that decided where the next one
    starts are complete: its first line (`#5 things` is not the heading `#` would be) and
    the one after it (a table's delimiter row turns the line above it into a table
    header). Finished blocks keep their HTML; each update parses and renders only the
    text after them. A fenced code block that is still being written is shown in pieces
    of `CODE_PIECE_LINES` lines (`StreamFrame.pieces`), so only its last piece changes.

    `finish(text)` gives exactly `MarkdownRenderer.render(text)` (the tests check every
    prefix of a set of answers), re-using the finished blocks. Reference-style link
    definitions (`[x]: https://...`) change links anywhere in the text, so an answer
    with one is parsed whole at every update instead (code blocks still in pieces).
    """

    def __init__(self, renderer: MarkdownRenderer) -> None:
        self.renderer = renderer
        self._whole = False  # a reference definition was seen: parse everything each time
        self._reset()

    def _reset(self) -> None:
        #: the source of the finished blocks (ends at the start of a line), their exact
        #: HTML, what the view shows for them, and their code blocks
        self._src = ""
        self._segments: list[str] = []
        self._pieces: list[str] = []
        self._blocks: list[str] = []
        #: code blocks being streamed, by their offset in the text: (language, HTML of
        #: their finished pieces)
        self._code: dict[int, tuple[str, list[str]]] = {}

    def feed(self, text: str) -> StreamFrame:
        """The answer so far, for display; finishes the blocks that can no longer change."""
        tail, tokens, groups, env = self._parse_tail(text)
        complete_lines = tail.count("\n")
        # the blocks before the last one whose start is decided are finished
        keep = 0
        for k in range(1, 0 if self._whole else len(groups)):
            if groups[k].line + 2 <= complete_lines:
                keep = k
        pieces: list[str] = []
        finished: list[tuple[str, list[str]]] = []
        n_blocks = len(self._blocks)
        for k, group in enumerate(groups):
            offset = len(self._src) + _line_offset(tail, group.line)
            tok = tokens[group.start]
            if tok.type == "fence" and group.end - group.start == 1:
                exact, shown = self._fence_pieces(tok, offset, env, final=k < keep)
            else:
                exact = self.renderer._render_group(tokens, group, env)
                shown = [exact]
            if k < keep:
                finished.append((exact, shown))
                n_blocks = len(env["blocks"])
            pieces.extend(shown)
        frame = StreamFrame(self._pieces + pieces, list(env["blocks"]))
        if keep:
            self._src += tail[: _line_offset(tail, groups[keep].line)]
            for exact, shown in finished:
                self._segments.append(exact)
                self._pieces.extend(shown)
            self._blocks = list(env["blocks"][:n_blocks])
            self._code = {at: c for at, c in self._code.items() if at >= len(self._src)}
        return frame

    def finish(self, text: str) -> RenderedMarkdown:
        """The complete answer: exactly what `MarkdownRenderer.render(text)` gives."""
        _tail, tokens, groups, env = self._parse_tail(text)
        segments = self._segments + [self.renderer._render_group(tokens, g, env) for g in groups]
        return RenderedMarkdown("".join(segments), list(env["blocks"]), segments)

    # -- internals ---------------------------------------------------------------------

    def _parse_tail(self, text: str) -> tuple[str, list[Any], list[_Group], dict[str, Any]]:
        if not text.startswith(self._src):  # not a continuation (edited, restarted)
            self._reset()
        tail = text[len(self._src) :]
        env: dict[str, Any] = {"blocks": list(self._blocks)}
        tokens = self.renderer._parse(tail, env) if tail else []
        if env.get("references") and not self._whole:
            # links before the definition change too: from now on, parse it all each time
            self._whole = True
            if self._src:
                self._reset()
                return self._parse_tail(text)
        return tail, tokens, top_level_groups(tokens), env

    def _fence_pieces(
        self, tok: Any, offset: int, env: dict[str, Any], *, final: bool
    ) -> tuple[str, list[str]]:
        """(exact HTML if `final` else "", the pieces shown) of a fenced code block."""
        blocks: list[str] = env["blocks"]
        n = len(blocks)
        blocks.append(tok.content)
        lang = fence_language(tok.info)
        code = tok.content
        lines = code.splitlines(keepends=True)
        cached = self._code.get(offset)
        if cached is None or cached[0] != lang:
            cached = self._code[offset] = (lang, [])
        done = cached[1]
        complete = code.count("\n")
        # finished pieces: whole pieces of complete lines, leaving the rest to the last piece
        while (len(done) + 1) * CODE_PIECE_LINES < complete:
            a = len(done) * CODE_PIECE_LINES
            chunk = "".join(lines[a : a + CODE_PIECE_LINES])
            self.renderer.counts.blocks_rendered += 1
            done.append(self.renderer.code_html(chunk, lang, n, head=not done, tail=False))
        rest = "".join(lines[len(done) * CODE_PIECE_LINES :])
        self.renderer.counts.blocks_rendered += 1
        # the last piece changes with every update until the block is finished: highlighting
        # it each time would cost more than all the rest of an update
        last = self.renderer.code_html(rest, lang, n, head=not done, tail=True, highlight=final)
        shown = [*done, last]
        exact = ""
        if final:
            self.renderer.counts.blocks_rendered += 1
            exact = self.renderer.code_html(code, lang, n)
        return exact, shown


def _line_offset(text: str, line: int) -> int:
    """The offset in `text` where line number `line` (0-based) starts."""
    pos = 0
    for _ in range(line):
        nl = text.find("\n", pos)
        if nl < 0:
            return len(text)
        pos = nl + 1
    return pos


_warm = False


def is_warm() -> bool:
    """True once `warm_up()` ran: rendering no longer imports or compiles anything big."""
    return _warm


def warm_up() -> None:
    """Import markdown-it and pygments and compile the common lexers (off the GUI thread).

    Otherwise the first answer shown pays ~0.2-0.3 s of imports and regex compilation on
    the GUI thread. Until this has run, the view shows answers as plain text.
    """
    global _warm
    sample = "*a* `b`\n\n| x |\n|---|\n| 1 |\n\n"
    for lang in ("python", "javascript", "typescript", "bash", "json", "rust", "go", "cpp"):
        sample += f"```{lang}\nx = 1\n```\n"
    MarkdownRenderer().render(sample)
    MarkdownRenderer(dark=True).render(sample)
    _warm = True


def plain_to_html(text: str) -> str:
    """Text shown as-is (user messages, thinking): escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")
