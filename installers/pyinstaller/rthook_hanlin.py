"""Runtime hook of Hanlin's frozen bundle: runs before any of Hanlin's code.

Why: a few things differ when Python is not installed. On Linux the bundle ships
DejaVu fonts beside a fontconfig file that adds them to the system's fonts (a
minimal system may have none, and Qt then draws no text); FONTCONFIG_FILE points
there unless the user set it.
"""

import os
import sys


def _use_bundled_fonts() -> None:
    if not sys.platform.startswith("linux") or os.environ.get("FONTCONFIG_FILE"):
        return
    conf = os.path.join(getattr(sys, "_MEIPASS", ""), "fonts", "fonts.conf")
    if os.path.isfile(conf):
        os.environ["FONTCONFIG_FILE"] = conf


_use_bundled_fonts()
