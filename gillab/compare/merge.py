"""Several runs as one: each cell and skip tagged with its run's label, an env per run."""
from __future__ import annotations

import dataclasses
import json

__all__ = ["merge_runs", "to_json", "load_across", "relabelled"]


def merge_runs(runs: list, interpreters: list | None = None):
    """[(label, CompareRun), ...] -> (one CompareRun whose cells and skips carry their
    run's label, {label: env}). The host's run comes first and gives ``env``.
    ``interpreters`` (found.Interpreter, same order) adds each run's path and GIL
    setting to ``settings["interpreters"]``."""
    from gillab.compare.records import CompareRun

    cells, skipped, envs = [], [], {}
    settings: dict = {}
    for label, run in runs:
        envs[label] = run.env
        settings = settings or dict(run.settings)
        cells += [dataclasses.replace(c, interpreter=label) for c in run.cells]
        skipped += [{**s, "interpreter": label} for s in run.skipped]
    by_label = {i.label: i for i in interpreters or ()}
    settings["interpreters"] = []
    for label, run in runs:
        entry = {"label": label, "python": run.env.get("python"),
                 "executable": run.env.get("executable")}
        if label in by_label:
            entry["path"] = by_label[label].path
            entry["gil"] = by_label[label].gil  # asked for: "off", "on" or None
        settings["interpreters"].append(entry)
    host_env = runs[0][1].env if runs else {}
    return CompareRun(host_env, tuple(cells), settings, tuple(skipped)), envs


def to_json(run, envs: dict) -> dict:
    """The ``compare --json`` object (schema gillab/compare/1) with ``envs`` beside ``env``."""
    data = run.to_dict()
    ordered = {"schema": data.pop("schema"), "env": data.pop("env"), "envs": envs}
    ordered.update(data)
    return ordered


def load_across(path: str):
    """(CompareRun, {label: env}) from a ``compare --python --json`` file (or a plain one)."""
    from gillab.compare.records import load_run

    run = load_run(path)
    with open(path, encoding="utf-8") as f:
        envs = json.load(f).get("envs")
    if not envs:
        label = next((c.interpreter for c in run.cells if c.interpreter), None) or "this"
        envs = {label: run.env}
    return run, envs


def relabelled(run):
    """For the plot: each run's executors as lines of their own."""
    return dataclasses.replace(run, cells=tuple(
        dataclasses.replace(c, executor=f"{c.executor} [{c.interpreter}]")
        for c in run.cells))
