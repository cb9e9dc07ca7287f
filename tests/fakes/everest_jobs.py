"""Jobs for the Everest stand-in (tests/fakes/everest.py): submit, follow, cancel, log.

`EverestJobs(fake)` adds these routes to an EverestFake:
  POST /api/apps/<id or owner/alias>  {name, inputs, resources?} -> 201 {id, state}
      (facts "Apps"; everest.py __submitJob checks for 201 and reads id, state)
  GET  /api/jobs                      -> [job, ...]   (everest.py getJobs)
  GET  /api/jobs/<id>                 -> job          (everest.py getJobStatus)
  POST /api/jobs/<id>/cancel                          (everest.py cancelJob)
  DELETE /api/jobs/<id>                               (everest.py deleteJob)
  GET  /api/jobs/<id>/log             -> text         (everest.py getJobLog)
A job document has id, name, appId, appAlias, inputs, state and, once it ended,
result {output: value} (everest.py Job.fromjson and __checkJobs); file outputs are
/api/files/jobs/<job>/<file> (facts "Files"), served by the fake's files table.

Each job follows a script chosen by ``plan(inputs, n)`` (inputs plus "params": the
parsed params.json the job was given; n: how many jobs were submitted before it):
steps of (state, live status) a few milliseconds apart, on a fast clock, then its
end. Scripts imitate what the runtime writes: status.txt holds its last status,
"preempted: SIGTERM after ..." after a preemption (runtime/everest_runtime/
runner.py _final_status). Inputs are checked against the app's declared inputs,
so tests that add the exported app (everbake/everest/app.py) prove we send what it
declares.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.everest import Call, EverestFake, Reply, error

STEP_SECONDS = 0.03  # the fake's clock: one script step per this many seconds


@dataclass
class Script:
    """What a job does: its live statuses while RUNNING, then how it ends."""

    end: str = "DONE"  # DONE | FAILED | CANCELLED | "never" (runs until cancelled)
    statuses: list[str] = field(default_factory=lambda: ["solving", "solving: gap 1.0%"])
    final_status: str = "optimal: objective 42"
    log: list[str] = field(default_factory=lambda: ["task started", "task finished"])
    queued_steps: int = 2  # SUBMITTED, then SCHEDULED, before RUNNING


def done(objective: float = 42.0) -> Script:
    return Script(final_status=f"optimal: objective {objective:g}")


def failed() -> Script:
    return Script(
        end="FAILED",
        statuses=["solving"],
        final_status="failed: exit 3 after 0.1 s (last status: solving)",
        log=[f"model line {n}" for n in range(1, 40)] + ["Traceback: ValueError: bad freight"],
    )


def preempted() -> Script:
    return Script(
        end="FAILED",
        statuses=["solving", "preemption notice: the cloud is reclaiming this VM; stopping soon"],
        final_status="preempted: SIGTERM after 0.1 s; partial results collected",
        log=["task started", "SIGTERM"],
    )


def never_ends() -> Script:
    return Script(end="never", statuses=["solving"], final_status="")


@dataclass
class FakeJob:
    id: str
    name: str
    app: dict[str, Any]
    inputs: dict[str, Any]
    resources: list[str]
    script: Script
    submitted: float
    cancelled_at: float | None = None
    # Set by a runner that does the task for real (no script): state, info, result.
    live: dict[str, Any] | None = None


class EverestJobs:
    def __init__(
        self,
        fake: EverestFake,
        plan: Callable[[dict[str, Any], int], Script] | None = None,
        step_seconds: float = STEP_SECONDS,
        runner: Callable[[EverestJobs, FakeJob], None] | None = None,
    ) -> None:
        self.fake = fake
        self.plan = plan or (lambda inputs, n: done())
        # A runner does each task for real in a thread of its own, reporting through
        # drive(); without one, jobs follow their scripts on the fast clock.
        self.runner = runner
        self.step = step_seconds
        self.jobs: dict[str, FakeJob] = {}
        self.submissions: list[dict[str, Any]] = []  # every accepted POST body, in order
        self.lock = threading.RLock()
        app = r"/api/apps/(?P<app>[0-9a-f]{24}|[^/]+/[^/]+)"
        fake.route("POST", app, self._submit)
        fake.route("GET", r"/api/jobs", self._list)
        job = r"/api/jobs/(?P<job>[0-9a-f]{24})"
        fake.route("GET", job, self._get)
        fake.route("DELETE", job, self._delete)
        fake.route("POST", job + "/cancel", self._cancel)
        fake.route("GET", job + "/log", self._log)

    # ------------------------------------------------------------ test API

    def state(self, job_id: str) -> str:
        return self._doc(self.jobs[job_id])["state"]

    def drive(
        self,
        job_id: str,
        state: str,
        info: str = "",
        outputs: dict[str, tuple[str, bytes]] | None = None,
    ) -> None:
        """What a runner reports: the state, the live status and, at the end, the
        output files by parameter name (served at /api/files/jobs/<job>/<file>)."""
        with self.lock:
            job = self.jobs[job_id]
            live: dict[str, Any] = {"state": state, "info": info}
            if outputs is not None:
                live["result"] = {}
                for param, (name, data) in outputs.items():
                    uri = f"/api/files/jobs/{job_id}/{name}"
                    with self.fake.lock:
                        self.fake.files[uri] = data
                    live["result"][param] = uri
            job.live = live

    def end_now(self, job_id: str, script: Script) -> None:
        """Let a job run ``script`` to its end at once (for jobs planned never to end)."""
        with self.lock:
            job = self.jobs[job_id]
            job.script = script
            job.submitted -= self.step * (script.queued_steps + len(script.statuses) + 1)

    # ------------------------------------------------------------- routes

    def _submit(self, call: Call) -> Reply:
        body = call.json()
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
            return error(400, "job inputs are required")  # guess: text
        with self.fake.lock:
            found = self.fake._find_app(call.match["app"])
            app = self.fake.apps.get(found or "")
        if app is None:
            return error(404, "Application not found")  # guess: text
        inputs = body["inputs"]
        declared = app.get("inputs") or {}
        # guess: Everest checks job inputs against the app's declared inputs; the
        # texts of its refusals are not public.
        for name in inputs:
            if declared and name not in declared:
                return error(400, f"Unknown input: {name}")
        for name, decl in declared.items():
            if name not in inputs and not decl.get("optional") and "default" not in decl:
                return error(400, f"Missing input: {name}")
        with self.lock:
            job = FakeJob(
                id=secrets.token_hex(12),  # 24-hex ids (facts "Resources")
                name=str(body.get("name") or ""),
                app=app,
                inputs=inputs,
                resources=list(body.get("resources") or []),
                script=self.plan({**inputs, "params": self.params(inputs)}, len(self.submissions)),
                submitted=time.monotonic(),
            )
            self.jobs[job.id] = job
            self.submissions.append(body)
        if self.runner is not None:
            job.live = {"state": "SUBMITTED"}
            threading.Thread(target=self.runner, args=(self, job), daemon=True).start()
        # everest.py __submitJob: 201 with {id, state}
        return Reply(201, {"id": job.id, "state": "SUBMITTED"})

    def params(self, inputs: dict[str, Any]) -> Any:
        """The parameters a job was given: the JSON of its uploaded params.json."""
        with self.fake.lock:
            raw = self.fake.files.get(str(inputs.get("parameters")))
        return json.loads(raw) if raw is not None else None

    def _list(self, call: Call) -> Reply:
        with self.lock:
            return Reply(200, [self._doc(j) for j in self.jobs.values()])

    def _get(self, call: Call) -> Reply:
        job = self._find(call)
        return Reply(200, self._doc(job))

    def _delete(self, call: Call) -> Reply:
        job = self._find(call)
        with self.lock:
            del self.jobs[job.id]
        return Reply(200)  # guess: the status of a delete is not public

    def _cancel(self, call: Call) -> Reply:
        job = self._find(call)
        with self.lock:
            if self._doc(job)["state"] not in ("DONE", "FAILED", "CANCELLED"):
                job.cancelled_at = time.monotonic()
        return Reply(200)  # guess: everest.py only checks that it is not an error

    def _log(self, call: Call) -> Reply:
        job = self._find(call)
        text = "".join(line + "\n" for line in job.script.log)
        return Reply(200, text.encode(), "text/plain")  # everest.py streams it to a file

    # ------------------------------------------------------------ the clock

    def _find(self, call: Call) -> FakeJob:
        with self.lock:
            job = self.jobs.get(call.match["job"])
        if job is None:
            raise error(404, "Job not found")  # guess: text
        return job

    def _doc(self, job: FakeJob) -> dict[str, Any]:
        script = job.script
        now = time.monotonic()
        steps = int((now - job.submitted) / self.step)
        doc: dict[str, Any] = {
            "id": job.id,
            "name": job.name,
            "appId": job.app["id"],
            "appAlias": f"{job.app['owner']}/{job.app['alias']}" if job.app["alias"] else None,
            "inputs": job.inputs,
            "resources": job.resources,  # guess: not in everest.py's Job.fromjson
        }
        if job.live is not None:
            return {**doc, **job.live}
        if job.cancelled_at is not None and now - job.cancelled_at >= self.step:
            return self._ended(job, doc, "CANCELLED", "cancelled: SIGINT after 0.1 s")
        if steps < script.queued_steps:
            doc["state"] = "SUBMITTED" if steps == 0 else "SCHEDULED"
            return doc
        running = steps - script.queued_steps
        if script.end == "never" or running < len(script.statuses):
            doc["state"] = "RUNNING"
            # guess: the live status field's name; see everbake/everest/jobs.py
            doc["info"] = script.statuses[min(running, len(script.statuses) - 1)]
            return doc
        return self._ended(job, doc, script.end, script.final_status)

    def _ended(self, job: FakeJob, doc: dict[str, Any], state: str, status: str) -> dict:
        doc["state"] = state
        doc["info"] = status  # guess: as above
        if state == "CANCELLED":
            return doc
        base = f"/api/files/jobs/{job.id}"
        log = "".join(line + "\n" for line in job.script.log)
        content = {
            "results.zip": _zip({"solution.json": json.dumps({"status": status})}),
            "status.txt": status + "\n",
            "stdout": log,
            "stderr": "",
            "version.txt": f"{job.inputs.get('version')} (0123abcd)\n",
            "stats.json": '{"cpu_seconds": 0.1, "wall_seconds": 0.2}\n',
        }
        if job.inputs.get("debug") == "true":
            content["debug.zip"] = _zip({"logs/stdout.log": log})
        # The app's outputMappings (everbake/everest/app.py) name the files; a file the
        # task did not write is no output (guess: how Everest reports a missing file).
        mappings = job.app.get("config", {}).get("outputMappings") or [
            {"param": "results", "file": "results.zip"},
            {"param": "status", "file": "status.txt"},
            {"param": "stdout", "file": "stdout"},
        ]
        result = {}
        with self.fake.lock:
            for mapping in mappings:
                data = content.get(mapping["file"])
                if data is None:
                    continue
                uri = f"{base}/{mapping['file']}"
                self.fake.files.setdefault(uri, data if isinstance(data, bytes) else data.encode())
                result[mapping["param"]] = uri
        doc["result"] = result
        return doc


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()
