"""Golden fixtures: every case under fixtures/<filter>/ through its filter, pipeline/ through all.

The cases are data (fixtures/README.md describes the format), after Tabby agent's
golden tests: real-looking code in Python, TypeScript, Rust, Go and HTML/Markdown,
with what the model wrote and what a user should be shown.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from hanlin.engine.completion.filters import DEFAULT_FILTERS, FILTERS, FilterContext, postprocess

FIXTURES = Path(__file__).parent / "fixtures"
PIPELINE = "pipeline"
LANGUAGES = {"python", "typescript", "rust", "go", "html", "markdown"}
_REQUIRED = {"description", "language", "prefix", "completion", "expected"}
_KNOWN = _REQUIRED | {"suffix", "multiline", "vocabulary"}


def vocabularies() -> dict[str, tuple[str, ...]]:
    """fixtures/vocabularies.toml: each real vocabulary's special-token texts."""
    data = tomllib.loads((FIXTURES / "vocabularies.toml").read_text(encoding="utf-8"))
    return {name: tuple(texts) for name, texts in data.items()}


@dataclass(frozen=True)
class Case:
    path: Path
    group: str  # the filter's name, or "pipeline"
    language: str
    ctx: FilterContext
    completion: str
    expected: str

    @property
    def names(self) -> tuple[str, ...]:
        return DEFAULT_FILTERS if self.group == PIPELINE else (self.group,)


def load_case(path: Path) -> Case:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    missing, unknown = _REQUIRED - set(data), set(data) - _KNOWN
    assert not missing and not unknown, f"{path}: missing {missing}, unknown {unknown}"
    assert data["language"] in LANGUAGES, f"{path}: language {data['language']!r}"
    special: tuple[str, ...] = ()
    if "vocabulary" in data:
        special = vocabularies()[data["vocabulary"]]
    ctx = FilterContext(
        prefix=data["prefix"],
        suffix=data.get("suffix", ""),
        multiline=data.get("multiline", True),
        language=data["language"],
        special_texts=special,
    )
    return Case(path, path.parent.name, data["language"], ctx, data["completion"], data["expected"])


def _paths() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.toml"))


def _all_cases() -> list[Case]:
    return [load_case(p) for p in _paths()]


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=f"{p.parent.name}/{p.stem}") for p in _paths()]
)
def test_golden_fixture(path: Path) -> None:
    case = load_case(path)
    assert postprocess(case.completion, case.ctx, case.names) == case.expected


def test_every_fixture_folder_names_a_filter_and_every_filter_has_cases_in_each_language() -> None:
    cases = _all_cases()
    groups = {c.group for c in cases}
    assert groups <= set(FILTERS) | {PIPELINE}, groups - set(FILTERS)
    for group in [*DEFAULT_FILTERS, PIPELINE]:
        mine = [c for c in cases if c.group == group]
        assert len(mine) >= 5, f"{group}: only {len(mine)} fixtures"
        seen = {c.language for c in mine}
        assert {"python", "typescript", "rust", "go"} <= seen, (group, seen)
        assert {"html", "markdown"} & seen, (group, seen)


def test_fixtures_cover_special_tokens_and_html_strikethrough() -> None:
    """The case that would have caught `</s>` on a fixed marker list is there, in the chain too."""
    cases = _all_cases()
    html = [c for c in cases if "</s>" in c.completion and c.ctx.language in {"html", "markdown"}]
    assert {c.group for c in html} >= {"strip_special_tokens", PIPELINE}
    assert all("</s>" in c.expected for c in html)
    cut = [c for c in cases if c.group == "strip_special_tokens" and c.expected != c.completion]
    assert len(cut) >= 3  # and real special texts are still cut
