"""A sweep directory of everbake's first format (sweep.json) resumes: it is carried
over into sweep.db, finished jobs are kept, running ones followed, the rest
submitted."""

from __future__ import annotations

import json
from pathlib import Path

from everbake.everest import jobs, runjob
from everbake.everest.grid import load_grid
from tests.jobs.conftest import APP, Site


def first_format(site: Site, tmp_path: Path) -> Path:
    """What issue 12's sweepstate.Sweep.save() wrote, with one job still running."""
    grid = tmp_path / "grid.json"
    grid.write_text(
        json.dumps({"base": {"version": "v1"}, "product": {"params": {"x": [1, 2, 3]}}})
    )
    variations = load_grid(grid)
    directory = tmp_path / "runs" / "sweep-20250101-000000-abcd"
    done_id = "d" * 24
    (directory / done_id).mkdir(parents=True)
    (directory / done_id / "status.txt").write_text("optimal: objective 10\n")
    (directory / done_id / "stats.json").write_text('{"cpu_seconds": 1.5, "wall_seconds": 2.0}')
    name = "sweep-20250101-000000-abcd-1-0"
    sub = jobs.Submission(app=APP, version="v1", params={"x": 2}, name=name, debug=False)
    api = site.api()
    running_id = runjob.submit(api, sub, runjob.prepare(api, sub))
    attempt = {"started": 1.0, "statuses": [], "submitted_at": 2.0, "ended_at": None}
    items = [
        {"variation": variations[0].as_json(), "final": True, "attempts": [
            {**attempt, "name": "sweep-20250101-000000-abcd-0-0", "job_id": done_id,
             "state": "DONE", "statuses": ["optimal: objective 10"], "ended_at": 9.0}]},
        {"variation": variations[1].as_json(), "final": False, "attempts": [
            {**attempt, "name": name, "job_id": running_id, "state": "RUNNING"}]},
        {"variation": variations[2].as_json(), "final": False, "attempts": []},
    ]  # fmt: skip
    (directory / "sweep.json").write_text(json.dumps({
        "format": 1, "id": "20250101-000000-abcd", "app": APP, "grid": str(grid.resolve()),
        "retries": 2, "max_parallel": 4, "uploads": {}, "created": 0.5, "items": items,
    }))  # fmt: skip
    return directory


def test_a_first_format_sweep_is_carried_over_and_finished(site, tmp_path):
    site.jobs.step = 0.03
    directory = first_format(site, tmp_path)
    assert len(site.jobs.submissions) == 1  # the running job, submitted "before"
    result = site.everbake("sweep", "--max-requests-per-second", "100", "--resume",
                           str(directory), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "carried over into sweep.db" in result.stderr
    assert (directory / "sweep.json.imported").is_file() and not (directory / "sweep.json").exists()
    table = json.loads((directory / "summary.json").read_text())["jobs"]
    assert [r["state"] for r in table] == ["DONE"] * 3
    assert table[0]["job"] == "d" * 24 and table[0]["last_status"] == "optimal: objective 10"
    assert table[0]["cpu_seconds"] == 1.5
    assert len(site.jobs.submissions) == 2  # only x=3 was submitted now
    assert site.jobs.params(site.jobs.submissions[1]["inputs"]) == {"x": 3}
