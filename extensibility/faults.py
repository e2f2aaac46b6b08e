"""Fault injection for the project's own tests: a build can be held at a phase.

Not a setting and not documented for users: it takes `_EXTENSIBILITY_TEST_PAUSE=PHASE:DIR`
with DIR an existing folder, so it cannot be set by accident. At PHASE the build writes
`DIR/paused-PHASE` (its pid) and waits until `DIR/release-PHASE` exists, for at most
`MAX_PAUSE` seconds, so even a stray setting never holds a start forever. Tests use it to
meet a build at a known point (kill it there, or start others against its lock).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from extensibility.log import Log

VARIABLE = "_EXTENSIBILITY_TEST_PAUSE"
MAX_PAUSE = 600.0
POLL = 0.05


def pause(env: Mapping[str, str], phase: str, log: Log) -> None:
    wanted, _, folder = env.get(VARIABLE, "").partition(":")
    if wanted != phase or not folder or not os.path.isdir(folder):
        return
    with open(os.path.join(folder, f"paused-{phase}"), "w", encoding="utf-8") as marker:
        marker.write(str(os.getpid()))
    log.phase("fault", f"paused before {phase} ({VARIABLE})")
    release = os.path.join(folder, f"release-{phase}")
    deadline = time.monotonic() + MAX_PAUSE
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(POLL)
