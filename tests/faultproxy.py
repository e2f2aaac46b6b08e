"""A fault-injecting HTTP proxy in front of a real index, on 127.0.0.1 (for the tests).

Modes: `pass` (forward), `error` (answer 503), `drop` (close the connection halfway through
a file download), `slow` (wait `delay` seconds before answering), `hold` (answer nothing
until `released` is set: an installer is then certainly still running), and `flaky` (the
first `failures` requests get 503, then forward). The mode can be changed while it runs.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


@dataclass
class Faults:
    mode: str = "pass"
    delay: float = 0.0
    failures: int = 0
    requests: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:PORT
        self.faults = Faults()
        faults = self.faults
        upstream_base = self.upstream

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                faults.requests.append(self.path)
                if faults.mode == "slow":
                    time.sleep(faults.delay)
                if faults.mode == "hold":
                    faults.released.wait()
                if faults.mode == "error" or (faults.mode == "flaky" and faults.failures > 0):
                    faults.failures -= 1
                    self.send_error(503, "injected fault")
                    return
                try:
                    with urllib.request.urlopen(upstream_base + self.path, timeout=30) as answer:
                        body = answer.read()
                        status = answer.status
                        content_type = answer.headers.get("Content-Type", "text/html")
                except urllib.error.HTTPError as error:
                    self.send_error(error.code)
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:  # no Accept-Ranges: clients download whole files
                    return
                if faults.mode == "drop" and self.path.endswith((".whl", ".tar.gz")):
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.faults.released.set()  # no request stays held past the test
        self.server.shutdown()
        self.server.server_close()
