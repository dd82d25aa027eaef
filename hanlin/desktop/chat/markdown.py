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
        if not text:
            return RenderedMarkdown("")
        md = self._md
        env: dict[str, list[str]] = {"blocks": []}
        tokens = md.parse(text, env)
        segments: list[str] = []
        start = 0
        for i, tok in enumerate(tokens):
            # a top-level block ends with its closing token, or is one token (fence, hr)
            if tok.level == 0 and tok.nesting <= 0:
                segments.append(md.renderer.render(tokens[start : i + 1], md.options, env))
                start = i + 1
        if start < len(tokens):
            segments.append(md.renderer.render(tokens[start:], md.options, env))
        return RenderedMarkdown("".join(segments), env["blocks"], segments)

    def _fence(self, tokens, idx, _options, env) -> str:
        dark = self.dark
        code_bg = "#272822" if dark else "#f6f8fa"
        head_bg = "#3a3b35" if dark else "#e8ebef"
        head_fg = "#c8c8c8" if dark else "#57606a"
        tok = tokens[idx]
        lang = (tok.info or "").strip().split(" ")[0]
        code = tok.content
        blocks: list[str] = env["blocks"]
        n = len(blocks)
        blocks.append(code)
        body = _highlight(code, lang, dark)
        label = html.escape(lang or "code")
        return (
            f'<table width="100%" cellspacing="0" cellpadding="6" '
            f'style="background:{code_bg}; margin-top:4px; margin-bottom:6px;">'
            f'<tr><td style="background:{head_bg}; color:{head_fg};">'
            f'<span style="font-size:small;">{label}</span>'
            f'&nbsp;&nbsp;<a href="{COPY_SCHEME}{n}" style="font-size:small;">Copy</a>'
            f"</td></tr><tr><td>"
            f'<pre style="margin:0; white-space:pre-wrap;">{body}</pre>'
            f"</td></tr></table>"
        )

    def _code_inline(self, tokens, idx, _options, _env) -> str:
        bg = "#3a3b35" if self.dark else "#eff1f3"
        text = html.escape(tokens[idx].content)
        return f'<code style="background:{bg};">&nbsp;{text}&nbsp;</code>'


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
