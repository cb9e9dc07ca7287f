"""The JSON Schema of Everest's application descriptor: the shapes of the two public
exports pass it (rebuilt here with our own words and values: the structure of
distcomp/SvF svf-service/svf-remote.zip and the-templet-project/templet
samples/parsweep/everest-app/everest-app.zip), and what the real format lacks
does not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from everbake.everest.app import schema_problems


def _req(value: int = 1) -> dict[str, Any]:
    return {"defaultValue": value, "allowOverride": False}


def _requirements() -> dict[str, Any]:
    return {name: _req() for name in ("nodes", "coresPerNode", "memoryPerCore", "timeLimit")}


def _map(param: str, file: str) -> dict[str, str]:
    return {"param": param, "file": file, "pattern": ""}


def svf_shaped() -> dict[str, Any]:
    """A file-array input, a required file input with viewType, stdout/stderr and a
    results archive as outputs, no input mappings, a bare script as the command."""
    uri = {"type": "string", "format": "uri"}
    return {
        "alias": "fit-remote",
        "name": "fit-remote",
        "annotation": "fits a model to measurements",
        "keywords": ["fit", "demo"],
        "description": "**fit** in markdown\n\nwith a [link](https://example.invalid)",
        "inputs": {
            "files": {
                "title": "Data",
                "description": "data files",
                "type": "array",
                "items": dict(uri),
                "required": False,
            },
            "task": {
                "title": "Task file",
                "description": "what to fit",
                **uri,
                "viewType": "input",
                "required": True,
            },
        },
        "outputs": {
            name: {"title": name, "description": "an output", **uri, "required": required}
            for name, required in (("results", False), ("stderr", True), ("stdout", True))
        },
        "type": "application",
        "config": {
            "command": "run-fit.sh",
            "inputMappings": [],
            "outputMappings": [
                _map("stdout", "stdout"),
                _map("stderr", "stderr"),
                _map("results", "results.zip"),
            ],
            "resourceRequirements": _requirements(),
        },
        "retryFailedTasks": False,
        "files": [],
        "version": "0.2.0",
    }


def templet_shaped() -> dict[str, Any]:
    """Number inputs mapped to text files, number outputs read from files, an output
    with an empty format, every input optional, a command with arguments."""
    number = {"description": "", "type": "number", "required": False}
    return {
        "alias": "SweepApp",
        "name": "SweepApp",
        "annotation": "",
        "keywords": [],
        "description": "",
        "inputs": {
            "script": {
                "title": "script",
                "description": "",
                "type": "string",
                "format": "uri",
                "viewType": "input",
                "required": False,
            },
            "x": {"title": "first", **number},
            "y": {"title": "second", **number},
        },
        "outputs": {
            "z": {"title": "result", **number},
            "console": {
                "title": "console",
                "description": "",
                "type": "string",
                "format": "",
                "required": False,
            },
        },
        "type": "application",
        "config": {
            "command": "solver -q -i script.txt",
            "inputMappings": [_map("x", "x.txt"), _map("y", "y.txt"), _map("script", "script.txt")],
            "outputMappings": [_map("console", "stdout"), _map("z", "z.txt")],
            "resourceRequirements": _requirements(),
        },
        "retryFailedTasks": False,
        "files": [],
        "version": "1.0.0",
    }


@pytest.mark.parametrize("make", [svf_shaped, templet_shaped])
def test_the_public_exports_shape_passes(make) -> None:  # type: ignore[no-untyped-def]
    assert schema_problems(make()) == []


def _broken(change) -> list[str]:  # type: ignore[no-untyped-def]
    app = copy.deepcopy(templet_shaped())
    change(app)
    return schema_problems(app)


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (lambda a: a.update(everbake={"image": "x"}), "(top level)", "'everbake' was unexpected"),
        (lambda a: a["inputs"]["x"].update(optional=True), "inputs.x", "'optional' was unexpected"),
        (lambda a: a["inputs"]["x"].pop("required"), "inputs.x", "'required' is a required"),
        (lambda a: a["inputs"]["x"].update(default=1), "inputs.x", "'default' was unexpected"),
        (
            lambda a: a["config"].update(command="bash bootstrap.sh ${version}"),
            "config.command",
            "should not be valid",
        ),
        (
            lambda a: a["config"].update(retryFailedTasks=True),
            "config",
            "'retryFailedTasks' was unexpected",
        ),
        (lambda a: a.pop("retryFailedTasks"), "(top level)", "'retryFailedTasks' is a required"),
        (
            lambda a: a["config"]["inputMappings"][0].pop("pattern"),
            "config.inputMappings.0",
            "'pattern' is a required",
        ),
        (
            lambda a: a["config"]["resourceRequirements"].update(nodes=2),
            "config.resourceRequirements.nodes",
            "is not of type 'object'",
        ),
        (lambda a: a.update(type="app"), "type", "'application' was expected"),
    ],
)
def test_what_the_real_format_lacks_is_refused_by_field(change, where, says) -> None:  # type: ignore[no-untyped-def]
    problems = _broken(change)
    assert problems, "the change should break the format"
    assert any(p.startswith(f"{where}: ") and says in p for p in problems), problems
