"""params.json -> argv, and the everest.toml contract (both TOML readers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "runtime") not in sys.path:
    sys.path.insert(0, str(REPO / "runtime"))

from everest_runtime import contract, minitoml, params  # noqa: E402
from everest_runtime.errors import ConfigError  # noqa: E402

EXAMPLE = REPO / "runtime" / "examples" / "transport"


def test_flags_style_covers_every_json_type(tmp_path):
    values = {
        "n": 3,
        "gap": 0.5,
        "name": "a b; rm -rf /",
        "verbose": True,
        "warm": False,
        "supply": [1, 2.5, "x"],
        "skip": None,
        "debug": True,
    }
    argv = params.to_argv(values, "flags", "refuse", tmp_path)
    assert argv == [
        "--n", "3", "--gap", "0.5", "--name", "a b; rm -rf /", "--verbose", "--no-warm",
        "--supply", "1", "--supply", "2.5", "--supply", "x",
    ]  # fmt: skip
    assert "--debug" not in argv


def test_nested_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match=r"'costs' is a nested object .* nested = \"json-file\""):
        params.to_argv({"costs": {"a": 1}}, "flags", "refuse", tmp_path)
    with pytest.raises(ConfigError, match="nested list"):
        params.to_argv({"m": [[1, 2]]}, "flags", "refuse", tmp_path)


def test_nested_as_json_file(tmp_path):
    argv = params.to_argv({"costs": {"a": [1, 2]}}, "flags", "json-file", tmp_path)
    assert argv[0] == "--costs"
    assert json.loads(Path(argv[1]).read_text()) == {"a": [1, 2]}


def test_json_and_none_styles(tmp_path):
    argv = params.to_argv({"x": {"y": 1}, "debug": False}, "json", "refuse", tmp_path)
    assert argv[0] == "--params"
    assert json.loads(Path(argv[1]).read_text()) == {"x": {"y": 1}}
    assert params.to_argv({"x": 1}, "none", "refuse", tmp_path) == []


def test_keys_that_cannot_be_flags_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot be a command-line flag"):
        params.to_argv({"--evil": 1}, "flags", "refuse", tmp_path)
    with pytest.raises(ConfigError):
        params.to_argv({"a b": 1}, "flags", "refuse", tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('"x"', "must hold a JSON object"),
    ],
)
def test_bad_params_files(tmp_path, text, message):
    path = tmp_path / "params.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        params.load(path)


def test_missing_params_file_means_no_parameters(tmp_path):
    assert params.load(tmp_path / "params.json") == {}


def test_minitoml_reads_the_example_like_tomllib():
    text = (EXAMPLE / "everest.toml").read_text()
    assert minitoml.loads(text) == tomllib.loads(text)
    tricky = """
# comment
[model]
name = 'lit\\eral'   # trailing comment
command = [
  "python",   # interpreter
  "a \\"q\\".py",
]
n = -3
f = 1.5e3
on = true
[model.sub]
x = []
"""
    assert minitoml.loads(tricky) == tomllib.loads(tricky)


@pytest.mark.parametrize("text", ["[model\n", "a = \n", 'a = "x\n', "a = 1\na = 2\n", "a = 1 b\n"])
def test_minitoml_rejects_what_tomllib_rejects(text):
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)
    with pytest.raises(minitoml.TOMLDecodeError):
        minitoml.loads(text)


def test_contract_of_the_example_model():
    spec = contract.load(EXAMPLE)
    assert spec.name == "transport"
    assert spec.command == [sys.executable, str(EXAMPLE / "transport.py")]
    assert spec.results == ("out/*.csv", "out/*.json")
    assert spec.status_prefix == "##status "


def write_toml(tmp_path: Path, body: str) -> Path:
    (tmp_path / "everest.toml").write_text(body)
    return tmp_path


@pytest.mark.parametrize(
    "body, message",
    [
        ('[model]\ncomand = ["x"]\n', "unknown field model.comand; did you mean 'command'"),
        ("[model]\nname = 'x'\n", "model.command is required"),
        ('[model]\ncommand = "python x.py"\n', "model.command must be a list of strings"),
        ('[model]\ncommand = ["x"]\nparameters = "yaml"\n', "use one of: flags, json, none"),
        ('[model]\ncommand = ["x"]\nnested = "flatten"\n', "use one of: refuse, json-file"),
        ('[model]\ncommand = ["x"]\nresults = ["../up/*"]\n', "must stay inside"),
        ('command = ["x"]\n', r"needs a \[model\] table"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_contract_errors_name_the_file_and_field(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message) as info:
        contract.load(write_toml(tmp_path, body))
    assert str(tmp_path / "everest.toml") in str(info.value)


def test_run_task_sh_fallback_and_missing_contract(tmp_path):
    with pytest.raises(ConfigError, match=r"no everest\.toml and no run-task\.sh"):
        contract.load(tmp_path)
    (tmp_path / "run-task.sh").write_text("echo hi\n")
    spec = contract.load(tmp_path)
    assert spec.command == ["bash", str(tmp_path / "run-task.sh")]
    assert spec.parameters == "none" and spec.source == "run-task.sh"
