"""What proves, before an environment is published, that the server in it can start.

Importing the server's console-script module is not enough: azmlinfsrv loads its app lazily,
in each gunicorn worker, so a dependency broken for the app (an `opentelemetry` upgrade the
app cannot import from) passes that import and kills every worker at boot. For a server we
know, the probe builds its app the way a worker does, with the user's scoring script left
out: its `init()` is the deployment's business, not the environment's. For any other Python
console script, the probe imports its module.
"""

from __future__ import annotations

from collections.abc import Mapping

# top-level package of a known server -> code that builds its app as a worker does at boot
_AZMLINFSRV = """
from azureml_inference_server_http.server import user_script

def _run(raw_data):
    return raw_data

def _load_script(self, app_root):  # the user's script is not imported, its init() not run
    self._user_run = _run
    self._user_init = lambda: None
    self._analyze_run()

user_script.UserScript.load_script = _load_script
from azureml_inference_server_http.server.create_app import create
create()
"""
APP_FACTORIES: Mapping[str, str] = {"azureml_inference_server_http": _AZMLINFSRV}
# the probe runs the server's code (and whatever its imports run) before any deployment
# does: neither the deployment's own settings (App Insights keys, app folders) nor any
# credential reach it. Dropped: every variable with one of these prefixes, or whose name
# holds one of these words
_DROPPED_PREFIXES = ("AML_", "AZUREML_", "AZURE_", "EXTENSIBILITY_", "PIP_", "UV_", "MSI_",
                     "IDENTITY_")
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "SAS", "AUTH",
                 "CONNECTION_STRING")


def probe_code(module: str) -> str:
    return f"import {module}\n" + APP_FACTORIES.get(module.split(".")[0], "")


def describe(module: str) -> str:
    """What a passing probe proved, for the log."""
    if module.split(".")[0] in APP_FACTORIES:
        return f"the server's app is created (import {module}, then its app factory)"
    return f"import {module} works"


def describe_failure(module: str) -> str:
    if module.split(".")[0] in APP_FACTORIES:
        return f"creating its app failed (import {module}, then its app factory)"
    return f"import {module} failed"


def probe_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables the boot probe sees (docs/security.md says which are dropped)."""
    return {k: v for k, v in env.items() if not k.upper().startswith(_DROPPED_PREFIXES)
            and not any(word in k.upper() for word in _SECRET_WORDS)}
