"""pytest fixtures around tests/support/fake_hub.py.

Use in a test module (or a conftest) with:

    from tests.support.fake_hub_fixtures import fake_hub  # noqa: F401

`fake_hub` starts a FakeHub for one test, points HF_ENDPOINT at it, clears
HF_TOKEN / HF_HUB_OFFLINE so the developer's own settings never leak in, and
sets HANLIN_STALL_TIMEOUT to 2 s so stall tests finish quickly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_hub import FakeHub


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HANLIN_STALL_TIMEOUT", "2")
    try:
        yield hub
    finally:
        hub.stop()
