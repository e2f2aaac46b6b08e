"""What we read from the installers' output: uv's dry-run plan and pip's summary line."""

from __future__ import annotations

from pathlib import Path

import pytest

from extensibility.errors import InstallFailed
from extensibility.installers.pip import parse_installed
from extensibility.installers.uv import parse_dry_run
from extensibility.requirements import parse_requirements

HASH = "sha256:" + "a" * 64

UV_DRY_RUN = """\
Using Python 3.11.7 environment at: /image
Resolved 5 packages in 12ms
Would download 3 packages
Would install 4 packages
 + greeting==1.0
 + tinydep==1.1
 + local-project @ file://{project}
 + direct @ https://files.example/direct-1.0-py3-none-any.whl
 - framework==1.0
"""


def test_uv_plan_keeps_hashes_and_editability(tmp_path: Path) -> None:
    project = tmp_path / "local-project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'local-project'\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"greeting==1.0 --hash={HASH}\n-e {project}\n")
    spec = parse_requirements(requirements, {})
    lines = parse_dry_run(UV_DRY_RUN.format(project=project), spec)
    assert lines == [f"greeting==1.0 --hash={HASH}", "tinydep==1.1", f"-e {project}",
                     "direct @ https://files.example/direct-1.0-py3-none-any.whl"]


def test_uv_plan_nothing_to_do_and_an_unreadable_plan(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("greeting\n")
    spec = parse_requirements(requirements, {})
    assert parse_dry_run("Resolved 1 package in 3ms\nAudited 1 package in 0.1ms\n", spec) == []
    with pytest.raises(InstallFailed, match="would install 2 packages but 1 were recognised"):
        parse_dry_run("Would install 2 packages\n + greeting==1.0\n + ??? weird line\n", spec)


def test_pip_summary_line() -> None:
    output = ("Collecting greeting\nInstalling collected packages: tinydep, greeting\n"
              "Successfully installed greeting-1.0 my-pkg.name-2.0rc1 tinydep-1.1\n")
    assert parse_installed(output) == ("greeting==1.0", "my-pkg.name==2.0rc1", "tinydep==1.1")
    assert parse_installed("Requirement already satisfied: greeting\n") == ()


def test_uv_plan_installs_the_requests_url_not_the_masked_one_uv_prints(tmp_path: Path) -> None:
    """uv prints a direct reference without its credentials; the second step needs them."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("private @ https://bot:t0ken@files.example/private-1.0-py3-none-any"
                            ".whl\n")
    spec = parse_requirements(requirements, {})
    for shown in ("https://files.example/private-1.0-py3-none-any.whl",
                  "https://****@files.example/private-1.0-py3-none-any.whl"):
        lines = parse_dry_run(f"Would install 1 package\n + private @ {shown}\n", spec)
        assert lines == ["private @ https://bot:t0ken@files.example/private-1.0-py3-none-any.whl"]
