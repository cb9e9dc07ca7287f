"""Grid files: product and explicit lists, TOML and JSON, errors naming file and key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from everbake.everest.grid import GridError, load_grid


def write(tmp_path: Path, text: str, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_product_crosses_every_axis_over_base(tmp_path):
    grid = write(
        tmp_path,
        """
        [base]
        version = "v1"
        params = { time_limit = 60, freight = 1 }
        data = "job/data.tar.gz"

        [product]
        version = ["v1", "v2"]
        [product.params]
        freight = [80, 90, 100]
        """,
    )
    found = load_grid(grid)
    assert len(found) == 6
    assert [v.index for v in found] == list(range(6))
    combos = {(v.version, v.params["freight"]) for v in found}
    assert combos == {(ver, f) for ver in ("v1", "v2") for f in (80, 90, 100)}
    assert all(v.params["time_limit"] == 60 for v in found)  # base params kept
    assert all(v.data == str(tmp_path / "job" / "data.tar.gz") for v in found)
    assert found[0].label == "freight=80 version=v1"


def test_explicit_list_and_product_together_in_file_order(tmp_path):
    grid = write(
        tmp_path,
        """
        [base]
        version = "v1"
        [product]
        data = ["a.zip", "b.zip"]
        [[variations]]
        version = "v9"
        params = { freight = 120 }
        resource = "65a1b2c3d4e5f60718293a4b"
        """,
    )
    found = load_grid(grid)
    assert [v.data for v in found[:2]] == [str(tmp_path / "a.zip"), str(tmp_path / "b.zip")]
    last = found[2]
    assert (last.version, last.params, last.resource) == (
        "v9",
        {"freight": 120},
        "65a1b2c3d4e5f60718293a4b",
    )
    assert last.label == "freight=120 version=v9 resource=65a1b2c3d4e5f60718293a4b"


def test_json_grid_and_remote_data_uri_kept(tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(
        json.dumps(
            {
                "base": {"version": "main", "data": "/api/files/temp/ab/data.zip"},
                "variations": [{"params": {"x": 1}}, {"params": {"x": 2}, "debug": True}],
            }
        )
    )
    found = load_grid(grid)
    assert [v.params for v in found] == [{"x": 1}, {"x": 2}]
    assert found[0].data == "/api/files/temp/ab/data.zip"
    assert [v.debug for v in found] == [False, True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[prodcut]\nversion = ['a']\n",
            "grid.toml: prodcut: unknown key; did you mean 'product'?",
        ),
        ("[product]\nversion = []\n", "grid.toml: product.version: must be a non-empty list"),
        ("[product.params]\nx = 3\n", "grid.toml: product.params.x: must be a non-empty list"),
        ("[[variations]]\nparams = {x = 1}\n", "grid.toml: variations[0]: no version"),
        ("[base]\nversion = 3\n[product]\ndata=['a']\n", "grid.toml: base.version: must be a"),
        ("[[variations]]\nversoin = 'v1'\n", "variations[0].versoin: unknown key; did you mean"),
        ("[base]\nversion = 'v1'\n", "grid.toml: no variations: add a [product] table"),
        ("[base\n", "grid.toml: not valid TOML"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, text, message):
    grid = write(tmp_path, text)
    with pytest.raises(GridError) as caught:
        load_grid(grid)
    assert message in str(caught.value)
    assert str(grid) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_grid_file_is_one_line(tmp_path):
    with pytest.raises(GridError, match=r"^--grid .*nope.toml: cannot read it"):
        load_grid(tmp_path / "nope.toml")
