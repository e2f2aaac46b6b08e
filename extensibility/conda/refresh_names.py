"""Refresh the vendored conda -> PyPI name table (`data/pypi_names.tsv`).

    ./dev refresh-conda-names      (python -m extensibility.conda.refresh_names)

The table is a snapshot of conda-forge's PyPI name mapping as maintained by the regro bot
(`grayskull_pypi_mapping.json`, from cf-graph-countyfair), taken from the copy the
`conda-pypi` distribution ships on PyPI. Each line: the conda-forge name, a tab, the PyPI
name. The header records the source distribution, its version and the date of the snapshot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

SOURCE = "conda-pypi"
MEMBER = "conda_pypi/grayskull_pypi_mapping.json"
TABLE = Path(__file__).resolve().parent / "data" / "pypi_names.tsv"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                        SOURCE], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            mapping = json.loads(archive.read(MEMBER))
    pairs = sorted({(entry["conda_name"].lower(), entry["pypi_name"].lower())
                    for entry in mapping.values()
                    if entry.get("conda_name") and entry.get("pypi_name")})
    version = wheel.name.split("-")[1]
    header = (f"# conda-forge name -> PyPI name, {len(pairs)} entries\n"
              f"# source: {MEMBER} of {SOURCE} {version} (PyPI), the regro bot's mapping\n"
              f"# snapshot: {time.strftime('%Y-%m-%d')}; refresh: ./dev refresh-conda-names\n")
    TABLE.write_text(header + "".join(f"{c}\t{p}\n" for c, p in pairs), encoding="utf-8")
    print(f"{TABLE}: {len(pairs)} entries from {SOURCE} {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
