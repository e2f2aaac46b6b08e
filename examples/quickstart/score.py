"""Scoring script of the quickstart: needs `tinystats`, which the image does not have."""

import json

import tinystats


def init() -> None:
    pass


def run(raw_data: str) -> dict[str, float]:
    values = json.loads(raw_data)["data"]
    return {"mean": tinystats.mean(values), "stdev": tinystats.stdev(values)}
