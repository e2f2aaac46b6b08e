"""An installer's failure names the user's FILE:LINE, and only the lines really involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from extensibility.blame import depended_on, error_section, index_refusal, involved
from extensibility.requirements import parse_requirements
from tests.conftest import contract_env, run_entrypoint
from tests.support import ImageVenv, Index

INSTALLERS = ["uv", "pip"]


@pytest.mark.parametrize("kind", ["requirements", "conda"])
@pytest.mark.parametrize("line", ["greetng", "greeting==9.9"], ids=["misspelt", "unreleased"])
@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_failed_install_names_the_users_line(
    installer: str, line: str, kind: str, image: ImageVenv, app: Path, cache: Path,
    index: Index, tmp_path: Path,
) -> None:
    if kind == "conda":
        name = "conda.yaml"
        (app / name).write_text("dependencies:\n  - pip\n  - pip:\n    - tinydep\n"
                                f"    - {line}\n")
        variable, number, other = "AZUREML_EXTRA_CONDA_YAML", 5, 4
    else:
        name = "requirements.txt"
        (app / name).write_text(f"# the model's packages\ntinydep\n{line}\n")
        variable, number, other = "AZUREML_EXTRA_REQUIREMENTS_TXT", 3, 2
    env = contract_env(tmp_path, image, app, cache, PIP_INDEX_URL=index.url,
                       EXTENSIBILITY_INSTALLER=installer, **{variable: name})
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    assert f"{app / name}:{number}: {line!r}" in result.stderr
    assert f"{app / name}:{other}:" not in result.stderr  # tinydep is not involved
    assert "conflicts with the scoring server" not in result.stderr
    assert not list(cache.glob("envs/*"))


@pytest.mark.parametrize("installer", INSTALLERS)
def test_a_conflict_with_the_server_cites_only_the_line_that_causes_it(
    installer: str, image: ImageVenv, app: Path, cache: Path, index: Index, tmp_path: Path,
) -> None:
    """pip's output mentions every package it collected before the conflict: only the line
    whose package depends on the held one is cited."""
    (app / "requirements.txt").write_text(f"--index-url {index.url}\ngreeting\ntinydep==1.0\n"
                                          "needs-old-certifi\nhello-cli\n")
    env = contract_env(tmp_path, image, app, cache, EXTENSIBILITY_INSTALLER=installer,
                       AZUREML_EXTRA_REQUIREMENTS_TXT="requirements.txt")
    result = run_entrypoint(image, env, "prepare")
    assert result.returncode == 95, result.stderr
    requirements = app / "requirements.txt"
    assert "1 line of the request conflicts" in result.stderr
    assert f"{requirements}:4: 'needs-old-certifi'" in result.stderr
    for number in (2, 3, 5):
        assert f"{requirements}:{number}:" not in result.stderr
    assert "certifi is held to " in result.stderr


PIP_CONFLICT = """\
Collecting scikit-learn==1.5.0 (from -r /c/envs/k/.extensibility/requirements.txt (line 1))
Collecting joblib==1.4.2 (from -r /c/envs/k/.extensibility/requirements.txt (line 2))
Collecting connexion==2.14.2 (from -r /c/envs/k/.extensibility/requirements.txt (line 3))
ERROR: Cannot install -r /c/envs/k/.extensibility/requirements.txt (line 3) because these \
package versions have conflicting dependencies.

The conflict is caused by:
    connexion 2.14.2 depends on flask<2.3 and >=1.0.4
    The user requested (constraint) flask~=3.1.0
"""


def test_only_the_error_section_is_read(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("scikit-learn==1.5.0\njoblib==1.4.2\nconnexion==2.14.2\n")
    spec = parse_requirements(requirements, {})
    section = error_section(PIP_CONFLICT)
    assert section.startswith("ERROR: Cannot install")
    lines = involved(spec, section, "/c/envs/k/.extensibility/requirements.txt")
    assert [str(r.origin) for r in lines] == [f"{requirements}:3"]
    assert depended_on(section, "flask") and not depended_on(section, "joblib")
    assert error_section("Collecting greeting\nSuccessfully installed greeting-1.0\n") == ""
    assert index_refusal("Looking in indexes: x\nWARNING: 401 Error, Credentials not correct "
                         "for http://bot:t0ken@127.0.0.1:1/simple/greeting/\nmore") == (
        "401", "WARNING: 401 Error, Credentials not correct for "
        "http://****@127.0.0.1:1/simple/greeting/")
    assert index_refusal("hint: An index (http://h/simple/) returned a 403 Forbidden error.") \
        == ("403", "hint: An index (http://h/simple/) returned a 403 Forbidden error.")
    assert index_refusal("ERROR: No matching distribution found for greeting") is None
