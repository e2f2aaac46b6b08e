"""The deployment examples use only what the entrypoint reads: its variables, the app's
files where the contract looks for them, the server's port, the image's cache folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from extensibility.settings import SETTINGS, Settings
from tests.support import REPO

EXAMPLES = REPO / "examples" / "azureml"
VARIABLES = {s.variable for s in SETTINGS}
DOCKERFILE = (REPO / "entrypoint" / "Dockerfile.example").read_text()


def cache_of_the_image() -> str:
    line = next(x for x in DOCKERFILE.splitlines() if x.startswith("ENV EXTENSIBILITY_CACHE_DIR="))
    return line.split("=", 1)[1]


def test_the_managed_online_deployment() -> None:
    deployment = yaml.safe_load((EXAMPLES / "deployment.yml").read_text())
    variables = deployment["environment_variables"]
    assert set(variables) <= VARIABLES
    code = EXAMPLES / deployment["code_configuration"]["code"]
    script = deployment["code_configuration"]["scoring_script"]
    assert (code / script).is_file()
    # the platform sets these two; the request is found where the contract looks
    settings = Settings.from_environ({**variables, "AML_APP_ROOT": str(code.parent),
                                      "AZUREML_ENTRY_SCRIPT": f"{code.name}/{script}"})
    assert settings.requirements_txt is not None
    assert (settings.entry_script_dir / settings.requirements_txt).is_file()
    assert variables["EXTENSIBILITY_CACHE_DIR"] == cache_of_the_image()
    routes = deployment["environment"]["inference_config"]
    assert {route["port"] for route in routes.values()} == {settings.server_port}
    assert routes["scoring_route"]["path"] == "/score"


def test_the_kubernetes_deployment() -> None:
    manifest = yaml.safe_load((EXAMPLES / "kubernetes.yml").read_text())
    pod = manifest["spec"]["template"]["spec"]
    [container] = pod["containers"]
    variables = {item["name"]: item["value"] for item in container["env"]}
    assert set(variables) <= VARIABLES
    settings = Settings.from_environ(variables)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["app"] == str(settings.app_root)
    # the app folder (a ConfigMap of examples/azureml/app) has what the contract names
    app = EXAMPLES / "app"
    assert (app / settings.entry_script).is_file()
    assert settings.requirements_txt is not None and (app / settings.requirements_txt).is_file()
    # the cache is a subfolder of the group-writable volume, created private by the entrypoint
    assert Path(variables["EXTENSIBILITY_CACHE_DIR"]).parent == Path(mounts["cache"])
    assert container["ports"][0]["containerPort"] == settings.server_port
    assert container["readinessProbe"]["httpGet"]["port"] == settings.server_port
    assert "USER dockeruser" in DOCKERFILE and pod["securityContext"]["fsGroup"]
