"""The one subprocess runner: output streamed, a heartbeat while the child is silent, the
child killed on a timeout. The child waits on a FIFO the test opens: no sleeps."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

import extensibility.process
from extensibility.log import Log
from extensibility.process import run_streaming
from tests.support import wait_for


def test_a_silent_installer_gets_heartbeat_lines(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extensibility.process, "HEARTBEAT_SECONDS", 0.05)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    stream = io.StringIO()
    log = Log(stream=stream)
    result: list[int] = []
    command = ["sh", "-c", f'echo "Downloading numpy"; read line < "{gate}"; echo done']
    runner = threading.Thread(target=lambda: result.append(run_streaming(
        command, {"PATH": "/usr/bin:/bin"}, log, "uv install", tmp_path / "build.log",
        60).returncode))
    runner.start()
    wait_for(lambda: "uv install still running" in stream.getvalue(), 60, "a heartbeat line")
    with open(gate, "w") as writer:  # let the child finish
        writer.write("go\n")
    runner.join(60)
    assert result == [0]
    text = stream.getvalue()
    assert "(last: Downloading numpy)" in text and "| done" in text
