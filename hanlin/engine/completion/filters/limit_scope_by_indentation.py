"""Stop a multi-line completion at the end of the block the cursor is in.

After Tabby's limitScopeByIndentation: a code model happily writes the next
function after the one the user is in; indentation says where the user's
block ends in every language here (Python, TypeScript, Rust, Go, HTML), so no
parser is needed. The engine also calls this filter on the lines generated so
far to stop generating once the block is closed.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import (
    BLOCK_CLOSE_RE,
    BLOCK_OPEN_RE,
    FilterContext,
    current_line_before,
    indent_width,
)

__all__ = ["limit_scope_by_indentation"]


def limit_scope_by_indentation(text: str, ctx: FilterContext) -> str:
    """Cut at the first line that leaves the cursor's block.

    The reference is the cursor line's indentation. A later line indented less
    ends the scope. If the cursor line opens a block (`def f():`, `if x {`), a
    line back at the reference indentation ends it too — a closing bracket there
    is kept as the block's last line. At the top level a blank line ends it
    (one statement or definition at a time).
    """
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    cursor_line = current_line_before(ctx.prefix) + lines[0]
    if cursor_line.strip():
        ref = indent_width(cursor_line)
        opened = bool(BLOCK_OPEN_RE.search(cursor_line.rstrip()))
    else:
        # A blank cursor line: the scope is the indentation the cursor sits at.
        ref = indent_width(cursor_line)
        opened = False
    kept = [lines[0]]
    seen_content = bool(lines[0].strip())
    for line in lines[1:]:
        if not line.strip():
            if ref == 0 and not opened and seen_content:
                break  # top level: one paragraph (one statement or definition) at a time
            kept.append(line)
            continue
        ind = indent_width(line)
        if ind < ref:
            break
        if ind == ref and opened:
            if BLOCK_CLOSE_RE.match(line):
                kept.append(line)
            break
        kept.append(line)
        seen_content = True
    else:
        return text
    while len(kept) > 1 and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)
