"""Supply-chain policy: each rule refuses a violating request before any install or network."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from extensibility.errors import PolicyViolation
from extensibility.policy import apply_policy
from extensibility.requirements import parse_requirements
from extensibility.settings import Settings
from tests.conftest import contract_env, run_entrypoint
from tests.support import ImageVenv, Index

CLOSED = "http://127.0.0.1:9/simple/"  # nothing listens: any attempt to use it would fail


def check(tmp_path: Path, text: str, rules: Mapping[str, str],
          env: Mapping[str, str] | None = None) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    apply_policy(Settings.from_environ(rules), parse_requirements(path, {}), env or {})


@pytest.mark.parametrize(("rules", "text", "line", "reason"), [
    ({"EXTENSIBILITY_REQUIRE_HASHES": "1"}, "a==1 --hash=sha256:00\nb>=1 --hash=sha256:00\n", 2,
     "not pinned"),
    ({"EXTENSIBILITY_REQUIRE_HASHES": "1"}, "a==1\n", 1, "not pinned"),
    ({"EXTENSIBILITY_NO_EXTRA_INDEX": "1"}, "-i https://a.example\n--extra-index-url "
     "https://b.example\nx\n", 2, "an extra index"),
    ({"EXTENSIBILITY_NO_DIRECT_REFERENCES": "1"}, "ok\nx @ https://h.example/x.whl\n", 2,
     "URL, VCS or local-path"),
    ({"EXTENSIBILITY_NO_DIRECT_REFERENCES": "1"}, "git+https://h.example/r.git#egg=r\n", 1,
     "URL, VCS or local-path"),
    ({"EXTENSIBILITY_ALLOWED_INDEX_HOSTS": "pkgs.example"}, "-i https://pkgs.example/s\n"
     "-f https://evil.example/links\nx\n", 2, "host evil.example is not in pkgs.example"),
])
def test_each_rule_names_the_line_and_the_rule(tmp_path: Path, rules: dict[str, str],
                                               text: str, line: int, reason: str) -> None:
    with pytest.raises(PolicyViolation) as caught:
        check(tmp_path, text, rules)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'requirements.txt'}:{line}: ")
    assert next(iter(rules)) in message and reason in message and "fix:" in message
    assert caught.value.exit_code == 95


def test_variables_and_the_default_index_count_too(tmp_path: Path) -> None:
    with pytest.raises(PolicyViolation, match=r"the default index.*host pypi\.org"):
        check(tmp_path, "x\n", {"EXTENSIBILITY_ALLOWED_INDEX_HOSTS": "pkgs.example"})
    with pytest.raises(PolicyViolation, match=r"PIP_EXTRA_INDEX_URL.*'https://\*\*\*\*@b"):
        check(tmp_path, "x\n", {"EXTENSIBILITY_NO_EXTRA_INDEX": "1"},
              env={"PIP_EXTRA_INDEX_URL": "https://tok:en@b.example/simple"})
    check(tmp_path, "-i https://pkgs.example/simple\nx\n",
          {"EXTENSIBILITY_ALLOWED_INDEX_HOSTS": "pkgs.example"})  # allowed: no error


def test_a_violation_stops_the_start_before_any_install(image: ImageVenv, app: Path, cache: Path,
                                                        tmp_path: Path) -> None:
    (app / "requirements.txt").write_text(f"--index-url {CLOSED}\ngreeting\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_REQUIRE_HASHES="1",
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "run", "--", "true")
    assert result.returncode == 95, result.stderr
    assert "refused by policy" in result.stderr and "requirements.txt:2" in result.stderr
    assert "running" not in result.stderr and not (cache / "envs").exists()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_hashed_pins_install_and_a_wrong_hash_is_caught(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, packages: Path,
    tmp_path: Path,
) -> None:
    def pin(name: str, digest: str | None = None) -> str:
        wheel = next(packages.glob(f"{name}-1.0-*.whl"))
        digest = digest or hashlib.sha256(wheel.read_bytes()).hexdigest()
        return f"{name}==1.0 --hash=sha256:{digest}"

    (app / "requirements.txt").write_text(f"--index-url {index.url}\n{pin('greeting')}\n"
                                          f"{pin('tinydep')}\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_REQUIRE_HASHES="1",
                       EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    good = run_entrypoint(image, env, "run", "--", "python", "-c", "import greeting")
    assert good.returncode == 0, good.stderr
    (app / "requirements.txt").write_text(f"--index-url {index.url}\n{pin('greeting')}\n"
                                          f"{pin('tinydep', '0' * 64)}\n")
    bad = run_entrypoint(image, env, "run", "--", "true")
    assert bad.returncode == 95, bad.stderr
    assert "hash" in bad.stderr.lower() and "tinydep" in bad.stderr


def test_policy_is_part_of_the_key(image: ImageVenv, app: Path, cache: Path, index: Index,
                                   tmp_path: Path) -> None:
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ntinydep\n")
    env = contract_env(tmp_path, image, app, cache,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    assert run_entrypoint(image, env, "run", "--", "true").returncode == 0
    strict = run_entrypoint(image, {**env, "EXTENSIBILITY_REQUIRE_HASHES": "1"}, "run", "--",
                            "true")
    assert strict.returncode == 95 and "refused by policy" in strict.stderr  # not a warm hit
