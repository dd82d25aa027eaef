"""Each post-processing filter by name, on real-looking Python, TypeScript and Go cases."""

from __future__ import annotations

import pytest

from hanlin.engine.completion.postprocess import (
    DEFAULT_FILTERS,
    FILTERS,
    FilterContext,
    postprocess,
    wants_multiline,
)


def run(name: str, text: str, prefix: str, suffix: str = "", multiline: bool = True) -> str:
    return FILTERS[name](text, FilterContext(prefix=prefix, suffix=suffix, multiline=multiline))


def test_registry_holds_every_default_filter() -> None:
    assert set(DEFAULT_FILTERS) <= set(FILTERS)
    assert len(DEFAULT_FILTERS) == 7
    with pytest.raises(KeyError, match="unknown post-processing filter"):
        postprocess("x", FilterContext(prefix=""), names=["no_such_filter"])


# ----------------------------------------------------------------- strip_special_tokens


@pytest.mark.parametrize(
    "raw",
    [
        "return total<|endoftext|>garbage",
        "return total<|file_sep|>other.py\nimport os",
        "return total<|im_end|>",
        "return total<｜fim▁end｜>",
        "return total<fim_middle>x",
        "return total</s>",
    ],
)
def test_strip_special_tokens_cuts_at_the_first_special(raw: str) -> None:
    assert run("strip_special_tokens", raw, "def f():\n    ") == "return total"


def test_strip_special_tokens_uses_the_templates_own_texts() -> None:
    ctx = FilterContext(prefix="", special_texts=("[CUSTOM_END]",))
    assert FILTERS["strip_special_tokens"]("a = 1[CUSTOM_END]b", ctx) == "a = 1"


def test_strip_special_tokens_keeps_ordinary_angle_brackets() -> None:
    text = "const xs: Array<number> = [];"
    assert run("strip_special_tokens", text, "") == text
    assert run("strip_special_tokens", "if a <b and c> d:", "") == "if a <b and c> d:"


# ----------------------------------------------------------------- single_line_if_text_right


def test_single_line_when_text_right_of_cursor_python() -> None:
    prefix = "def area(r):\n    return "
    suffix = " * r\n"
    raw = "3.14159 * r\n\ndef perimeter(r):"
    assert run("single_line_if_text_right", raw, prefix, suffix) == "3.14159 * r"


def test_multiline_allowed_when_only_closers_right_of_cursor_ts() -> None:
    prefix = "function sum(xs: number[]): number {\n  return xs.reduce("
    suffix = ");\n}\n"
    assert wants_multiline(prefix, suffix)
    raw = "(a, b) => {\n    return a + b;\n  }, 0"
    assert run("single_line_if_text_right", raw, prefix, suffix) == raw


def test_single_line_when_multiline_is_off() -> None:
    raw = "err != nil {\n\t\treturn err\n\t}"
    assert run("single_line_if_text_right", raw, "\tif ", "\n", multiline=False) == "err != nil {"


# ----------------------------------------------------------------- limit_scope_by_indentation


def test_scope_stops_at_the_end_of_a_python_function_body() -> None:
    prefix = "class Stack:\n    def push(self, item):\n        "
    raw = "self.items.append(item)\n        return self\n\n    def pop(self):\n        return 1"
    out = run("limit_scope_by_indentation", raw, prefix)
    assert out.rstrip() == "self.items.append(item)\n        return self"


def test_scope_after_a_block_opener_keeps_the_block_and_its_closer_ts() -> None:
    prefix = "export function clamp(x: number, lo: number, hi: number): number "
    raw = "{\n  if (x < lo) return lo;\n  return Math.min(x, hi);\n}\n\nexport function other() {"
    out = run("limit_scope_by_indentation", raw, prefix)
    assert out == "{\n  if (x < lo) return lo;\n  return Math.min(x, hi);\n}"


def test_scope_go_if_block_stops_at_the_dedent() -> None:
    prefix = "func load(p string) error {\n\tf, err := os.Open(p)\n\tif err != nil {\n\t\t"
    raw = 'return fmt.Errorf("open: %w", err)\n\t}\n\tdefer f.Close()'
    out = run("limit_scope_by_indentation", raw, prefix)
    assert out == 'return fmt.Errorf("open: %w", err)'


def test_scope_top_level_stops_after_one_paragraph() -> None:
    prefix = "import os\n\n"
    raw = "def main():\n    print(os.getcwd())\n\nif __name__ == '__main__':\n    main()"
    out = run("limit_scope_by_indentation", raw, prefix)
    assert out == "def main():\n    print(os.getcwd())"


def test_scope_leaves_single_lines_alone() -> None:
    assert run("limit_scope_by_indentation", "x + 1", "    y = ") == "x + 1"


# ----------------------------------------------------------------- remove_repetitive_lines


def test_repetitive_lines_are_cut_python() -> None:
    prefix = "def f():\n    "
    raw = "x = 1\n    y = 2\n    y = 2\n    y = 2\n    y = 2"
    assert run("remove_repetitive_lines", raw, prefix) == "x = 1\n    y = 2"


def test_repetitive_two_line_pattern_is_cut_go() -> None:
    prefix = "func main() {\n\t"
    raw = 'fmt.Println("a")\n\tfmt.Println("b")\n\tfmt.Println("a")\n\tfmt.Println("b")'
    assert run("remove_repetitive_lines", raw, prefix) == 'fmt.Println("a")\n\tfmt.Println("b")'


def test_completion_that_repeats_the_previous_line_is_dropped() -> None:
    prefix = "    total += price\n    "
    assert run("remove_repetitive_lines", "total += price", prefix) == ""


def test_nested_closing_braces_are_not_repetition_ts() -> None:
    prefix = "if (a) {\n  if (b) {\n    go();\n  "
    raw = "}\n}"
    assert run("remove_repetitive_lines", raw, prefix) == raw


# ----------------------------------------------------------------- drop_suffix_repeat


def test_completion_equal_to_the_text_after_the_cursor_is_dropped() -> None:
    prefix = "def f(x):\n    "
    suffix = "return x * 2\n"
    assert run("drop_suffix_repeat", "return x * 2", prefix, suffix) == ""


def test_trailing_lines_the_document_already_has_are_cut_ts() -> None:
    prefix = "function greet(name: string) {\n  "
    suffix = "\n  return msg;\n}\n"
    raw = "const msg = `Hello, ${name}`;\n  return msg;\n}"
    assert run("drop_suffix_repeat", raw, prefix, suffix) == "const msg = `Hello, ${name}`;"


def test_suffix_repeat_keeps_a_new_line() -> None:
    prefix = "x = "
    assert run("drop_suffix_repeat", "compute()", prefix, "\nprint(x)\n") == "compute()"


# ----------------------------------------------------------------- drop_duplicate_closing


def test_duplicate_closing_paren_python() -> None:
    assert run("drop_duplicate_closing", "len(items))", "print(", ")\n") == "len(items)"


def test_duplicate_closers_ts_call_with_object() -> None:
    prefix = "console.log(JSON.stringify("
    assert run("drop_duplicate_closing", "obj, null, 2))", prefix, "));\n") == "obj, null, 2"


def test_extra_closer_beyond_the_editors_is_kept_go() -> None:
    # the completion closes two calls, the editor inserted only one `)`
    prefix = "fmt.Println(strings.ToUpper("
    assert run("drop_duplicate_closing", "name))", prefix, ")\n") == "name)"


def test_duplicate_closing_quote() -> None:
    assert run("drop_duplicate_closing", 'hello"', 'msg = "', '"\n') == "hello"


def test_nothing_to_drop_without_closers_on_screen() -> None:
    assert run("drop_duplicate_closing", "len(items))", "print(", "\n") == "len(items))"


# ----------------------------------------------------------------- trim_trailing_whitespace


def test_trim_trailing_whitespace() -> None:
    assert run("trim_trailing_whitespace", "a = 1   \n    b = 2\t\n\n", "") == "a = 1\n    b = 2"
    assert run("trim_trailing_whitespace", "  \n \n", "") == ""


# ----------------------------------------------------------------- the whole chain


def test_default_chain_on_a_python_method() -> None:
    prefix = "class Account:\n    def deposit(self, amount):\n        "
    suffix = "\n\n    def withdraw(self, amount):\n        pass\n"
    raw = (
        "self.balance += amount  \n        return self.balance\n\n"
        "    def withdraw(self, amount):\n<|endoftext|>"
    )
    ctx = FilterContext(prefix=prefix, suffix=suffix)
    assert postprocess(raw, ctx) == "self.balance += amount\n        return self.balance"


def test_default_chain_single_line_with_closer_on_screen() -> None:
    prefix = "    result = max("
    suffix = ")\n    return result\n"
    raw = "a, b)\n    return result"
    assert postprocess(raw, FilterContext(prefix=prefix, suffix=suffix)) == "a, b"


@pytest.mark.parametrize(
    ("prefix", "suffix", "expected"),
    [
        ("def total(items):\n    ", "\n", True),  # a fresh line: a block may follow
        ("def total(items):", "\n", True),  # after a block opener
        ("if (ready) {", "\n}", True),
        ("    return [it", "\n", False),  # finishing a statement: one line
        ("    value = compute(", ")\n", True),  # an open call with only its closer right
        ("    x = ", " + 1\n", False),  # real text right of the cursor
        ("\tfmt.Println(", '")\n', True),
    ],
)
def test_wants_multiline_only_where_the_context_calls_for_it(
    prefix: str, suffix: str, expected: bool
) -> None:
    assert wants_multiline(prefix, suffix) is expected


def test_statement_being_finished_is_cut_to_one_line() -> None:
    raw = "em for item in self.items]\n        return items"
    assert run("single_line_if_text_right", raw, "    items = [it", "\n") == (
        "em for item in self.items]"
    )
