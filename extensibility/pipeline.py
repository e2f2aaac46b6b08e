"""The start's data path, in order: warm note -> full key -> store (hit? done) -> build.

    Start (inputs read once)
      -> warm.find            a note for these exact inputs: the environment, no parsing
      -> resolve.resolve      parse, policy, offline, protection and conflicts, key
      -> build.ensure_environment   lookup under locks; on a miss, the remote cache (restore,
                              or claim the build; remote/), else layout/install/check/publish
      -> warm.remember        the note, from what was read before the build
"""

from __future__ import annotations

from pathlib import Path

from extensibility import warm
from extensibility.log import Log
from extensibility.start import Start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from extensibility.remote.cache import Claim


class Ready:
    """What a start ends with: the environment to run in, and the build this start claimed
    under the remote cache's lease (the command publishes it, or gives it back)."""

    __slots__ = ("claim", "path")

    def __init__(self, path: Path, claim: Claim | None = None) -> None:
        self.path = path
        self.claim = claim


def environment_for(start: Start, log: Log) -> Ready | None:
    """The environment to run in (None: the image's Python as it is)."""
    if not start.request.installs:
        return None
    note = warm.note_path(start)  # the warm digest, computed once for find and remember
    found = warm.find(start, note, log)
    if found is not None:
        return Ready(found)
    # imported here: a warm start never pays for parsing, hashing or building
    from extensibility.build import ensure_environment
    from extensibility.resolve import resolve

    resolved = resolve(start, log)
    environment, claim = ensure_environment(start, resolved, log)
    warm.remember(resolved, note)
    return Ready(environment, claim)
