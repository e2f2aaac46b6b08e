"""Which conda names are PyPI packages, and under which PyPI name.

A conda name is installed from the package index only when it is *known* to be that PyPI
project: a look-alike name on PyPI can be an unrelated project (`snappy` is a 3-manifold
topology package there, not the compression library). Known, in order:
1. `RENAMED`: conda names whose PyPI project has another name (pytorch is torch);
2. the vendored conda-forge mapping (`data/pypi_names.tsv`, refreshed by
   `./dev refresh-conda-names`);
3. `COMMON`: popular packages whose conda-forge recipes are not built from PyPI sources (so
   the bot's mapping lacks them) but which are the same project under the same name;
4. a distribution the image itself has (its name is a PyPI name by construction).
Anything else is not sent to PyPI.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "data" / "pypi_names.tsv"

# conda name -> PyPI name, where they differ (docs/conda.md lists the same table)
RENAMED: Mapping[str, str] = {
    "pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost", "msgpack-python": "msgpack", "pytables": "tables",
    "matplotlib-base": "matplotlib", "py-opencv": "opencv-python", "opencv": "opencv-python",
    "python-graphviz": "graphviz", "python-kaleido": "kaleido", "brotli-python": "brotli",
    "numpy-base": "numpy", "pyqt": "pyqt5", "tensorflow-base": "tensorflow",
    "lightgbm-cpu": "lightgbm", "python-kubernetes": "kubernetes", "dask-core": "dask",
    "typing_extensions": "typing-extensions", "py-lightgbm": "lightgbm",
    "google-cloud-storage": "google-cloud-storage", "ruamel_yaml": "ruamel.yaml",
}

# same project, same name on conda-forge and PyPI, missing from the bot's mapping
COMMON = frozenset({
    "absl-py", "aiohttp", "alembic", "altair", "anyio", "appdirs", "argon2-cffi", "arrow",
    "astropy", "attrs", "azure-core", "azure-identity", "azure-storage-blob",
    "azureml-inference-server-http", "azureml-mlflow", "babel", "bcrypt", "beautifulsoup4",
    "black", "bleach", "blinker", "bokeh", "boto3", "botocore", "cachetools", "catboost",
    "certifi", "cffi", "chardet", "charset-normalizer", "click", "cloudpickle", "colorama",
    "contourpy", "cryptography", "cycler", "cython", "databricks-sdk", "datasets", "decorator",
    "defusedxml", "dill", "distributed", "docker", "entrypoints", "fastapi", "filelock",
    "flask", "flask-cors", "fonttools", "fsspec", "gensim", "gitpython", "google-auth",
    "graphene", "greenlet", "grpcio", "gunicorn", "h5py", "httpx", "huggingface_hub",
    "idna", "imageio", "importlib-metadata", "inference-schema", "ipykernel", "ipython",
    "itsdangerous", "jinja2", "jmespath", "joblib", "jsonschema", "keras", "kiwisolver",
    "lightgbm", "llvmlite", "lxml", "markdown", "markupsafe", "matplotlib", "mlflow",
    "mlflow-skinny", "more-itertools", "networkx", "nltk", "numba", "numpy", "onnx",
    "onnxruntime", "openpyxl", "opentelemetry-api", "opentelemetry-sdk", "packaging",
    "pandas", "paramiko", "pillow", "platformdirs", "plotly", "prometheus_client",
    "protobuf", "psutil", "pyarrow", "pyasn1", "pycparser", "pydantic", "pydantic-core",
    "pygments", "pyjwt", "pyopenssl", "pyparsing", "pyspark", "pytest", "python-dateutil",
    "python-dotenv", "pytz", "pywavelets", "pyyaml", "querystring_parser", "regex",
    "requests", "rich", "rsa", "s3transfer", "safetensors", "scikit-image", "scikit-learn",
    "scipy", "seaborn", "sentencepiece", "setuptools", "shap", "six", "sniffio",
    "sqlalchemy", "sqlparse", "starlette", "statsmodels", "sympy", "tabulate", "tensorboard",
    "tensorflow", "threadpoolctl", "tifffile", "tokenizers", "toolz", "tornado", "tqdm",
    "transformers", "typing-extensions", "tzdata", "urllib3", "uvicorn", "werkzeug",
    "wheel", "wrapt", "xgboost", "xlrd", "xmltodict", "yarl", "zipp",
})


@lru_cache(maxsize=1)
def _table() -> Mapping[str, str]:
    found: dict[str, str] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            conda, pypi = line.split("\t")
            # a conda name listed for several PyPI names: its own name wins
            if conda not in found or pypi == conda:
                found[conda] = pypi
    return found


def pypi_name(conda_name: str, image: Container[str] = ()) -> str | None:
    """The PyPI project a conda package is, or None when that is not known."""
    name = conda_name.lower()
    if name in RENAMED:
        return RENAMED[name]
    table = _table()
    if name in table:
        return table[name]
    if name in COMMON or name in image:
        return name
    return None
