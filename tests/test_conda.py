"""Conda files for real: the overlay strategy through the real index and scoring server, the
conda-prefix strategy against a local channel built here, and every failure's exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conda_channel import native_channel
from tests.conftest import StartServer, contract_env, run_entrypoint
from tests.support import IMAGE_WHEELHOUSE, ImageVenv, Index, build_image, complete_envs
from tests.wheels import build_wheel

pytestmark = pytest.mark.slow
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER_MINOR = f"{sys.version_info.major}.{sys.version_info.minor - 1}"

# what MLflow writes next to every model (python pinned to a patch release of the image's
# minor, pip pinned, everything else in the pip: section), plus conda `variables`
MLFLOW_CONDA_YAML = f"""\
channels:
- conda-forge
dependencies:
- python={MINOR}.1
- pip<=23.2.1
- pip:
  - --index-url {{index}}
  - greeting==1.0
  - msgpack==1.0
name: mlflow-env
variables:
  GREETING_STYLE: loud
"""

SCORE_PY = """\
import os

import greeting
import msgpack


def init():
    pass


def run(raw_data):
    return {"greeting": greeting.greet("conda"), "msgpack": msgpack.VERSION,
            "style": os.environ.get("GREETING_STYLE")}
"""


@pytest.fixture(scope="session")
def renamed(packages: Path) -> Path:
    """`msgpack` on the index: conda calls it msgpack-python."""
    build_wheel(packages, "msgpack", "1.0", modules={"msgpack/__init__.py": "VERSION = '1.0'\n"})
    return packages


def test_mlflow_conda_yaml_is_served_by_the_real_server_and_cached(
    renamed: Path, image: ImageVenv, app: Path, cache: Path, own_index: Index,
    start_server: StartServer, tmp_path: Path,
) -> None:
    (app / "score.py").write_text(SCORE_PY)
    (app / "conda.yaml").write_text(MLFLOW_CONDA_YAML.format(index=own_index.url))
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_CONDA_YAML="conda.yaml")

    cold = start_server(image, env)
    expected = {"greeting": "HELLO CONDA", "msgpack": "1.0", "style": "loud"}
    assert cold.score({}).json() == expected
    assert "strategy overlay" in cold.output()
    assert f"kept python={MINOR}.1 (the image's Python" in cold.output()
    cold.process.terminate()
    cold.process.wait(timeout=20)
    [environment] = complete_envs(cache)

    own_index.stop()  # a restart must not need the index
    warm = start_server(image, env)
    assert warm.score({}).json() == expected  # the variables come back on a cache hit too
    assert ": hit" in warm.output() and "running" not in warm.output()
    assert complete_envs(cache) == [environment]


RENAMED_SCORE_PY = """\
import shutil
import subprocess

import greeting
import msgpack


def init():
    pass


def run(raw_data):
    tool = subprocess.run([shutil.which("hello-cli")], capture_output=True, text=True)
    return {"msgpack": msgpack.VERSION, "greeting": greeting.greet("x"),
            "hello-cli": tool.stdout.startswith("hello from")}
"""


def test_renamed_conda_packages_and_an_included_requirements_file(
    renamed: Path, image: ImageVenv, app: Path, cache: Path, own_index: Index,
    start_server: StartServer, tmp_path: Path,
) -> None:
    (app / "score.py").write_text(RENAMED_SCORE_PY)
    (app / "env").mkdir()
    (app / "env" / "environment.yml").write_text(f"""\
name: renamed
channels: [defaults]
dependencies:
  - python={MINOR}
  - conda-forge::msgpack-python=1.0
  - certifi>=2024,<2025
  - ca-certificates
  - pip:
    - greeting>=1,<2
    - -r more-requirements.txt
""")
    (app / "env" / "more-requirements.txt").write_text("hello-cli==1.0\n")
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=own_index.url,
                       AZUREML_EXTRA_CONDA_YAML="env/environment.yml")

    plan = run_entrypoint(image, env, "plan")
    assert plan.returncode == 0, plan.stderr
    assert "msgpack-python=1.0 -> msgpack==1.0.* (msgpack-python is msgpack on PyPI" \
        in plan.stdout
    assert "certifi>=2024,<2025 -> certifi>=2024,<2025" in plan.stdout  # a known PyPI name
    assert "skipped ca-certificates (part of the Python runtime" in plan.stdout

    expected = {"msgpack": "1.0", "greeting": "HELLO X", "hello-cli": True}
    cold = start_server(image, env)
    assert cold.score({}).json() == expected
    cold.process.terminate()
    cold.process.wait(timeout=20)
    own_index.stop()
    warm = start_server(image, env)
    assert warm.score({}).json() == expected
    assert ": hit" in warm.output() and "running" not in warm.output()

    # the included file is part of the request: changing it rebuilds
    (app / "env" / "more-requirements.txt").write_text("hello-cli==1.0\ntinydep\n")
    replan = run_entrypoint(image, env, "plan")
    [cache_line] = [line for line in replan.stdout.splitlines() if line.startswith("cache:")]
    assert "miss" in cache_line and cache_line.endswith(": request"), cache_line


def test_missing_conda_file_exits_98(image: ImageVenv, app: Path, cache: Path,
                                     tmp_path: Path) -> None:
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_CONDA_YAML="nope.yml")
    done = run_entrypoint(image, env, "run", "--", "true")
    assert done.returncode == 98
    assert str(app / "nope.yml") in done.stderr


@pytest.mark.parametrize(("text", "where", "reason"), [
    ("dependencies:\n  - numpy\n - pip\n", ":3:", "not valid YAML"),
    ("dependencies:\n  - numpy\n  - sci kit learn 1 2 3\n", ":3:", "malformed version"),
    ("dependencies:\n  - numpy>=1.0|<<2\n", ":2:", "malformed version constraint"),
    ("dependencies:\n  - pip:\n    - greeting==\n", ":3:", "not a valid requirement"),
    ("dependencies: numpy\n", ":1:", "must be a list"),
    ("name: empty\n", ":1:", "no dependencies"),
])
def test_malformed_conda_file_fails_before_any_install_citing_the_line(
    text: str, where: str, reason: str, image: ImageVenv, app: Path, cache: Path, tmp_path: Path,
) -> None:
    (app / "conda.yaml").write_text(text)
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_CONDA_YAML="conda.yaml")
    done = run_entrypoint(image, env, "run", "--", "true")
    assert done.returncode == 95, done.stderr
    assert f"{app / 'conda.yaml'}{where}" in done.stderr and reason in done.stderr
    assert not (cache / "envs").exists() or not any((cache / "envs").iterdir())


def test_other_python_without_py_rattler_exits_95_with_two_ways_out(
    image: ImageVenv, app: Path, cache: Path, tmp_path: Path,
) -> None:
    (app / "conda.yaml").write_text(f"dependencies:\n  - python={OTHER_MINOR}\n  - numpy\n")
    env = contract_env(tmp_path, image, app, cache, AZUREML_EXTRA_CONDA_YAML="conda.yaml")
    done = run_entrypoint(image, env, "run", "--", "true")
    assert done.returncode == 95, done.stderr
    assert f"'python={OTHER_MINOR}' asks for another Python" in done.stderr
    assert "py-rattler is not installed" in done.stderr
    assert f"python={MINOR}" in done.stderr and "inference-extensibility[conda]" in done.stderr

    doctor = run_entrypoint(image, env, "doctor")
    assert doctor.returncode == 1
    assert "FAIL  request:" in doctor.stdout and "py-rattler is not installed" in doctor.stdout

    forced = run_entrypoint(image, {**env, "EXTENSIBILITY_CONDA_STRATEGY": "overlay"},
                            "run", "--", "true")
    assert forced.returncode == 95 and "cannot change the image's Python" in forced.stderr


# --- the conda-prefix strategy ----------------------------------------------------------

NATIVE_SCORE_PY = """\
import ctypes
import os
import subprocess

import greeting


def init():
    pass


def run(raw_data):
    library = ctypes.CDLL("libgreetnative.so")  # found through LD_LIBRARY_PATH
    library.greet_native.restype = ctypes.c_char_p
    tool = subprocess.run(["hello-native"], capture_output=True, text=True, check=True)
    return {"tool": tool.stdout.split(" from ")[0], "library": library.greet_native().decode(),
            "greeting": greeting.greet("prefix"), "prefix": os.environ["CONDA_PREFIX"]}
"""


@pytest.fixture(scope="session")
def conda_image(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> ImageVenv:
    """The simulated image with the conda extra (py-rattler) installed."""
    if not any(IMAGE_WHEELHOUSE.glob("py_rattler-*.whl")):
        pytest.fail(f"no py-rattler wheel in {IMAGE_WHEELHOUSE}: run `./dev test`")
    tmp = tmp_path_factory.mktemp("conda-image")
    return build_image(tmp / "image", tmp, extra_find_links=[packages],
                       extra_packages=["py-rattler"])


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conda")
    return native_channel(root / "channel", root / "work")


def test_native_package_gets_a_conda_prefix_used_by_the_scored_code(
    conda_image: ImageVenv, channel: Path, app: Path, cache: Path, own_index: Index,
    start_server: StartServer, tmp_path: Path,
) -> None:
    (app / "score.py").write_text(NATIVE_SCORE_PY)
    (app / "conda.yaml").write_text(f"""\
channels:
  - {channel}
dependencies:
  - python={MINOR}
  - hello-native=1.0
  - pip:
    - greeting==1.0
""")
    env = contract_env(tmp_path, conda_image, app, cache, PIP_INDEX_URL=own_index.url,
                       AZUREML_EXTRA_CONDA_YAML="conda.yaml")
    plan = run_entrypoint(conda_image, env, "plan")
    assert "'hello-native=1.0' is a native conda package" in plan.stdout, plan.stdout
    assert "conda prefix (native packages beside the image's Python)" in plan.stdout

    cold = start_server(conda_image, env)
    [environment] = complete_envs(cache)
    expected = {"tool": "hello-native 1.0", "library": "native library says hi",
                "greeting": "HELLO PREFIX", "prefix": str(environment / "conda")}
    assert cold.score({}).json() == expected
    assert "solved: 1 packages (hello-native)" in cold.output()
    cold.process.terminate()
    cold.process.wait(timeout=20)

    own_index.stop()
    warm = start_server(conda_image, env)
    assert warm.score({}).json() == expected
    assert ": hit" in warm.output() and "solving" not in warm.output()


def test_offline_channel_mirror_and_an_unsatisfiable_spec(
    conda_image: ImageVenv, channel: Path, app: Path, cache: Path, tmp_path: Path,
) -> None:
    (app / "conda.yaml").write_text("channels: [conda-forge]\n"
                                    "dependencies:\n  - hello-native>=1.1\n")
    # the file names conda-forge (unreachable here); the mirror variable replaces it
    # a remote cache (a dead one: it must not even be asked) does not share conda prefixes
    env = contract_env(tmp_path, conda_image, app, cache, AZUREML_EXTRA_CONDA_YAML="conda.yaml",
                       EXTENSIBILITY_CONDA_CHANNELS=str(channel),
                       EXTENSIBILITY_REMOTE_CACHE="http://127.0.0.1:9/devstoreaccount1/c")
    done = run_entrypoint(conda_image, env, "run", "--", "hello-native")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hello-native 1.1 from ")
    assert "a conda prefix is built on each node" in done.stderr
    assert "without the remote cache" not in done.stderr

    (app / "conda.yaml").write_text("dependencies:\n  - hello-native=9.9\n")
    failed = run_entrypoint(conda_image, env, "run", "--", "hello-native")
    assert failed.returncode == 95, failed.stderr
    assert "the conda solver cannot satisfy the file" in failed.stderr
    assert "hello-native" in failed.stderr.split("cannot satisfy the file", 1)[1]
    assert len(complete_envs(cache)) == 1  # the failed build left nothing behind


PYTHON_SCORE_PY = """\
import subprocess
import sys

import greeting


def init():
    pass


def run(raw_data):
    tool = subprocess.run(["hello-native"], capture_output=True, text=True, check=True)
    return {"base_prefix": sys.base_prefix, "prefix": sys.prefix,
            "greeting": greeting.greet("own python"), "tool": tool.stdout.split(" from ")[0]}
"""


@pytest.fixture(scope="session")
def python_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A channel with `hello-native` and a real `python` package (see python_channel)."""
    from tests.conda_channel import python_channel as add_python

    root = tmp_path_factory.mktemp("conda-python")
    return add_python(native_channel(root / "channel", root / "work"))


def test_prefix_with_its_own_python_runs_the_real_server_offline(
    conda_image: ImageVenv, python_channel: Path, packages: Path, app: Path, cache: Path,
    start_server: StartServer, tmp_path: Path,
) -> None:
    # everything offline: the channel is a folder, wheels come from a mounted wheelhouse
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in [*IMAGE_WHEELHOUSE.glob("*.whl"), *packages.glob("*.whl")]:
        (wheels / wheel.name).symlink_to(wheel)
    (app / "score.py").write_text(PYTHON_SCORE_PY)
    (app / "conda.yaml").write_text(f"""\
channels: [{python_channel}]
dependencies:
  - python={MINOR}
  - hello-native=1.1
  - pip:
    - greeting==1.0
""")
    env = contract_env(tmp_path, conda_image, app, cache, AZUREML_EXTRA_CONDA_YAML="conda.yaml",
                       EXTENSIBILITY_CONDA_STRATEGY="prefix", EXTENSIBILITY_WHEELHOUSE=str(wheels))
    cold = start_server(conda_image, env)
    [environment] = complete_envs(cache)
    expected = {"base_prefix": str(environment / "conda"), "prefix": str(environment),
                "greeting": "HELLO OWN PYTHON", "tool": "hello-native 1.1"}
    assert cold.score({}).json() == expected
    log = cold.output()
    assert "solved: 2 packages (hello-native, python)" in log
    server_version = next(IMAGE_WHEELHOUSE.glob("azureml_inference_server_http-*.whl")) \
        .name.split("-")[1]
    assert f"azureml-inference-server-http=={server_version}" in log
    assert (environment / "bin" / "azmlinfsrv").exists()  # the server of the prefix's venv
    cold.process.terminate()
    cold.process.wait(timeout=20)

    warm = start_server(conda_image, env)
    assert warm.score({}).json() == expected
    assert ": hit" in warm.output() and "solving" not in warm.output()


def test_wheelhouse_of_a_conda_file_then_an_offline_start(
    image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    (app / "conda.yaml").write_text(f"""\
dependencies:
  - python={MINOR}
  - certifi=2024.8.30
  - pip:
    - greeting==1.0
""")
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=index.url)
    made = run_entrypoint(image, env, "wheelhouse", "-r", str(app / "conda.yaml"),
                          "-o", str(app / "wheels"))
    assert made.returncode == 0, made.stderr
    assert "certifi=2024.8.30 -> certifi==2024.8.30.*" in made.stderr
    assert sorted(p.name.split("-")[0] for p in (app / "wheels").glob("*.whl")) == \
        ["certifi", "greeting", "tinydep"]

    offline = {**env, "PIP_INDEX_URL": "http://127.0.0.1:9/simple/",
               "AZUREML_EXTRA_CONDA_YAML": "conda.yaml", "EXTENSIBILITY_WHEELHOUSE": "wheels"}
    done = run_entrypoint(image, offline, "run", "--", "python", "-c",
                          "import greeting; print(greeting.greet('offline'))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "HELLO OFFLINE"


@pytest.mark.parametrize(("variables", "message"), [
    ({"EXTENSIBILITY_WHEELHOUSE": "."}, "EXTENSIBILITY_WHEELHOUSE makes the start offline"),
    ({"EXTENSIBILITY_ALLOWED_INDEX_HOSTS": "127.0.0.1"},
     "conda channel 'conda-forge' is refused by EXTENSIBILITY_ALLOWED_INDEX_HOSTS"),
])
def test_offline_and_policy_rules_cover_conda_channels(
    variables: dict[str, str], message: str, conda_image: ImageVenv, app: Path, cache: Path,
    tmp_path: Path,
) -> None:
    (app / "conda.yaml").write_text("channels: [conda-forge]\ndependencies:\n  - ffmpeg\n")
    env = contract_env(tmp_path, conda_image, app, cache, AZUREML_EXTRA_CONDA_YAML="conda.yaml",
                       **variables)
    done = run_entrypoint(conda_image, env, "plan")
    assert done.returncode == 95, done.stderr
    assert message in done.stderr
