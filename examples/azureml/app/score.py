"""A scoring script as Azure ML runs it: init() once per worker, run() per request."""

import json

import psutil


def init() -> None:
    pass


def run(raw_data: str) -> dict[str, object]:
    data = json.loads(raw_data)
    return {"received": data, "workers_cpu": psutil.cpu_count()}
