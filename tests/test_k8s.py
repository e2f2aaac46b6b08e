"""entrypoint/k8s/: the manifests are read as Kubernetes would, and the init container's
shell command and the server container's command are run for real, as two pods on two
nodes would run them, against the storage emulator and the real scoring server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from extensibility.settings import SETTINGS
from tests.azurite import Container
from tests.conftest import StartServer, contract_env
from tests.support import REPO, ImageVenv, Index

K8S = REPO / "entrypoint" / "k8s"
VARIABLES = {s.variable for s in SETTINGS} | {"AZURE_STORAGE_CONNECTION_STRING"}


def documents(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((K8S / name).read_text()))


def pod_of(name: str) -> dict[str, Any]:
    [deployment] = [d for d in documents(name) if d["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def variables(container: dict[str, Any], secret: str) -> dict[str, str]:
    """The container's environment, with the Secret's value where it is referenced."""
    return {item["name"]: item.get("value", secret) for item in container["env"]}


def test_init_and_server_containers_share_the_request_and_the_cache() -> None:
    pod = pod_of("deployment.yml")
    [init], [server] = pod["initContainers"], pod["containers"]
    assert init["env"] == server["env"] and init["volumeMounts"] == server["volumeMounts"]
    assert init["image"] == server["image"]
    env = variables(server, "secret")
    assert set(env) <= VARIABLES and "EXTENSIBILITY_REMOTE_CACHE" in env
    [remote] = [e for e in server["env"] if e["name"] == "EXTENSIBILITY_REMOTE_CACHE"]
    assert "secretKeyRef" in remote["valueFrom"]  # the SAS token is never in the manifest
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert Path(env["EXTENSIBILITY_CACHE_DIR"]).parent == Path(mounts["cache"])
    [cache] = [v for v in pod["volumes"] if v["name"] == "cache"]
    assert "emptyDir" in cache
    assert init["command"] == ["sh", "-c", "extensibility pull || extensibility prepare --publish"]
    assert server["command"] == ["extensibility", "run"]


def test_the_shared_volume_variant_is_one_read_write_many_claim() -> None:
    claim, deployment = documents("deployment-shared-volume.yml")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "azurefile-csi-nfs"  # flock works across nodes
    pod = deployment["spec"]["template"]["spec"]
    [server] = pod["containers"]
    env = variables(server, "")
    assert set(env) <= VARIABLES and "EXTENSIBILITY_REMOTE_CACHE" not in env
    [cache] = [v for v in pod["volumes"] if v["name"] == "cache"]
    assert cache["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_two_pods_run_the_init_command_then_the_server(
    image: ImageVenv, app: Path, own_index: Index, start_server: StartServer, tmp_path: Path,
    container: Container,
) -> None:
    (app / "requirements.txt").write_text(f"--index-url {own_index.url}\ngreeting==1.0\n")
    url, _ = container.sas_url()
    pod = pod_of("deployment.yml")
    [init], [server] = pod["initContainers"], pod["containers"]
    manifest_env = variables(server, url)

    # the manifest's values, but for the folders a pod has at other paths here
    here = {"AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT", "EXTENSIBILITY_CACHE_DIR",
            "EXTENSIBILITY_LOG_FORMAT"}
    assert manifest_env["AZUREML_ENTRY_SCRIPT"] == "score.py"  # the app fixture's script
    manifest_env = {k: v for k, v in manifest_env.items() if k not in here}

    def node(name: str) -> dict[str, str]:
        return contract_env(tmp_path, image, app, tmp_path / name / "cache", **manifest_env)

    first = subprocess.run(init["command"], env=node("first"), capture_output=True, text=True,
                           timeout=600, check=False)
    assert first.returncode == 0, first.stderr
    assert "not in the remote cache" in first.stderr  # pull: exit 91, so prepare --publish
    assert "published" in first.stderr

    own_index.stop()  # the second pod restores: nothing to install from
    second = subprocess.run(init["command"], env=node("second"), capture_output=True,
                            text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr
    assert "restored" in second.stderr and "prepare" not in second.stderr.split("restored")[0]
    assert server["command"] == ["extensibility", "run"]
    serving = start_server(image, node("second"), args=server["command"][1:])
    assert serving.score({}).json() == {"greeting": "HELLO WORLD"}
    assert "request unchanged" in serving.output()  # the init container's work, found warm
