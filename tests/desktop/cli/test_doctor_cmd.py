"""`hanlin doctor` reports what is wrong with the user's files, warnings included."""

from __future__ import annotations

import json
import subprocess

from hanlin.engine.core import paths
from tests.support.commands import HANLIN


def test_doctor_lists_an_unknown_settings_key(hanlin_home) -> None:
    paths.settings_file().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file().write_text(
        'completion_model = "x"\n[models."x"]\nn_batch = 256\n', encoding="utf-8"
    )
    result = subprocess.run(
        [*HANLIN, "doctor", "--json"], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout)
    assert any("n_batch" in p for p in report["problems"]), report["problems"]
