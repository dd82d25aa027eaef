"""desktop/errors.py: the most specific error class names the title, remote errors included."""

from __future__ import annotations

from hanlin.desktop.errors import describe
from hanlin.engine.core.errors import DiskFullError, DownloadError, HanlinError
from hanlin.engine.remote.errors import RemoteAuthError, RemoteError, RemoteUnreachableError


def test_titles_follow_the_most_specific_class() -> None:
    assert describe(HanlinError("x")).title == "Something went wrong"
    assert describe(DownloadError("x")).title == "Download failed"
    assert describe(DiskFullError("x")).title == "Not enough disk space"


def test_remote_failures_get_their_own_titles_and_keep_the_hint() -> None:
    text = describe(RemoteUnreachableError("Nothing listens at http://gpu:8000", "start it"))
    assert text.title == "Server not reachable"
    assert text.one_line() == "Nothing listens at http://gpu:8000 — start it"
    assert describe(RemoteAuthError("refused")).title == "Server refused the key"
    assert describe(RemoteError("odd")).title == "Remote server problem"
