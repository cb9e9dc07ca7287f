"""Jobs for the Everest stand-in (tests/fakes/everest.py), built from the public clients.

Sources, cited beside each behaviour below:
- vvvol/sptp everest.py, a copy of the official python-api (gitlab.com/everest/
  python-api): ``__submitJob``, ``getJobs``, ``getJobStatus``, ``cancelJob``,
  ``deleteJob``, ``deleteJobs``, ``getJobLog``, ``__checkJobs``, ``getFile``,
  ``Job.fromjson``;
- distcomp/pyomo-everest everest_api/everest.py at aadf9c8 (an older copy: it
  reads the job's ``app`` and accepts 200 or 201 on submit), and
  ssop/ssop_session.py ("Job failed, result downloaded" / "no result available");
- the-templet-project/templet lib/everest.hpp (``submit`` accepts 200 or 201 and
  reads id and state; ``_wait_loop_body`` reads ``result`` on DONE and ``info``
  on FAILED/CANCELLED; ``attach`` builds /api/files/jobs/<job>/<file>).

`EverestJobs(fake)` adds these routes to an EverestFake:
  POST /api/apps/<id or owner/alias>  {name, inputs, resources?} -> 201 (or 200) {id, state}
  GET  /api/jobs                      -> [job, ...]
  GET  /api/jobs/<id>                 -> job
  POST /api/jobs/<id>/cancel, DELETE /api/jobs/<id>, DELETE /api/jobs?name=<name>
  GET  /api/jobs/<id>/log             -> text
A job document holds id, name, appId, appAlias (null without an alias) or, with
``old_documents``, ``app``; inputs; state; ``result`` once the job ended with
outputs; ``info`` only once FAILED or CANCELLED. No ``resources`` field: no public
client reads one.

Each job follows a script chosen by ``plan(inputs, n)`` (inputs plus "params": the
parsed params.json the job was given; n: how many jobs were submitted before it):
queued, RUNNING, then its end, on a fast clock. Scripts imitate what the runtime
writes: status.txt holds its last status, "preempted: SIGTERM after ..." after a
preemption (runtime/everest_runtime/runner.py _final_status). A vanished VM
(``vanished()``) ends FAILED with no result at all.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.everest import Call, EverestFake, Reply, error
from tests.fakes.loopback_http import LoopbackHttpServer, QuietHandler

STEP_SECONDS = 0.03  # the fake's clock: one script step per this many seconds
TERMINAL = ("DONE", "FAILED", "CANCELLED")


@dataclass
class Script:
    """What a job does: how long it runs, then how it ends."""

    end: str = "DONE"  # DONE | FAILED | CANCELLED | "never" (runs until cancelled)
    running_steps: int = 2
    final_status: str = "optimal: objective 42"
    log: list[str] = field(default_factory=lambda: ["task started", "task finished"])
    queued_steps: int = 2  # SUBMITTED, then SCHEDULED, before RUNNING
    outputs: bool = True  # False: the VM vanished, nothing came back
    info: str = ""  # what `info` says once FAILED/CANCELLED (guess: its text)
    # What the runtime's stats.json holds (runtime/everest_runtime/stats.py summary())
    cpu_seconds: float = 0.1
    peak_rss_bytes: int = 50_000_000
    # The model's out/metrics.json (runtime/README.md), an output when the app maps it
    metrics: dict[str, Any] | None = None


def done(objective: float = 42.0) -> Script:
    return Script(final_status=f"optimal: objective {objective:g}")


def failed() -> Script:
    return Script(
        end="FAILED",
        final_status="failed: exit 3 after 0.1 s (last status: solving)",
        log=[f"model line {n}" for n in range(1, 40)] + ["Traceback: ValueError: bad freight"],
        info="task failed",  # guess: the text of info is not public
    )


def preempted() -> Script:
    return Script(
        end="FAILED",
        final_status="preempted: SIGTERM after 0.1 s; partial results collected",
        log=["task started", "SIGTERM"],
        info="task failed",  # guess: as above
    )


def vanished() -> Script:
    """The VM went away with the task: FAILED, no result (ssop_session.py's "Job
    failed, no result available" branch)."""
    return Script(end="FAILED", outputs=False, log=["task started"], info="task failed")


def never_ends() -> Script:
    return Script(end="never", final_status="")


@dataclass
class FakeJob:
    id: str
    name: str
    app: dict[str, Any]
    inputs: dict[str, Any]
    script: Script
    submitted: float
    cancelled_at: float | None = None
    # Set by a runner that does the task for real (no script): state, info, result.
    live: dict[str, Any] | None = None


class FileHost(LoopbackHttpServer):
    """Another host serving output files by full URL (sptp getFile fetches any URL
    not under /api/files/ with a plain GET); it records the headers it was sent."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.headers_seen: list[dict[str, str]] = []
        host = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                host.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                data = host.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

        super().__init__(Handler)


class EverestJobs:
    def __init__(
        self,
        fake: EverestFake,
        plan: Callable[[dict[str, Any], int], Script] | None = None,
        step_seconds: float = STEP_SECONDS,
        runner: Callable[[EverestJobs, FakeJob], None] | None = None,
        *,
        submit_status: int = 201,
        old_documents: bool = False,
        output_uris: str = "path",
        file_host: FileHost | None = None,
    ) -> None:
        self.fake = fake
        self.plan = plan or (lambda inputs, n: done())
        # A runner does each task for real in a thread of its own, reporting through
        # drive(); without one, jobs follow their scripts on the fast clock.
        self.runner = runner
        self.step = step_seconds
        # sptp __submitJob wants 201; pyomo-everest at aadf9c8 and templet take 200 too.
        self.submit_status = submit_status
        # pyomo-everest at aadf9c8 Job.fromjson reads `app`; sptp reads appAlias/appId.
        self.old_documents = old_documents
        # "path": /api/files/jobs/<job>/<file> (templet attach); "url": the same as a full
        # URL of this server; "host": a full URL of file_host (sptp getFile's else branch).
        self.output_uris = output_uris
        self.file_host = file_host
        self.jobs: dict[str, FakeJob] = {}
        # How GET /api/jobs answers. everest.py getJobs reads a JSON list of job
        # documents, each as GET /api/jobs/<id> (Job.fromjson); whether it pages is
        # not public (facts "Jobs as public clients see them"). The other shapes are
        # test knobs, not Everest's known behaviour:
        self.list_absent = False  # guess: a server without the list (404)
        self.list_limit: int | None = None  # guess: only the newest N (a paged list)
        self.list_without_result = False  # guess: list documents without result
        self.submissions: list[dict[str, Any]] = []  # every accepted POST body, in order
        self.lock = threading.RLock()
        app = r"/api/apps/(?P<app>[0-9a-f]{24}|[^/]+/[^/]+)"
        fake.route("POST", app, self._submit)
        fake.route("GET", r"/api/jobs", self._list)
        fake.route("DELETE", r"/api/jobs", self._delete_by_name)
        job = r"/api/jobs/(?P<job>[0-9a-f]{24})"
        fake.route("GET", job, self._get)
        fake.route("DELETE", job, self._delete)
        fake.route("POST", job + "/cancel", self._cancel)
        fake.route("GET", job + "/log", self._log)

    # ------------------------------------------------------------ test API

    def state(self, job_id: str) -> str:
        return str(self._doc(self.jobs[job_id])["state"])

    def drive(
        self,
        job_id: str,
        state: str,
        info: str = "",
        outputs: dict[str, tuple[str, bytes]] | None = None,
    ) -> None:
        """What a runner reports: the state, what `info` says at the end and, at the
        end, the output files by parameter name."""
        with self.lock:
            job = self.jobs[job_id]
            live: dict[str, Any] = {"state": state}
            if state in ("FAILED", "CANCELLED"):
                live["info"] = info  # templet reads info on these states only
            if outputs is not None:
                live["result"] = {
                    param: self._publish(job_id, name, data)
                    for param, (name, data) in outputs.items()
                }
            job.live = live

    def end_now(self, job_id: str, script: Script) -> None:
        """Let a job run ``script`` to its end at once (for jobs planned never to end)."""
        with self.lock:
            job = self.jobs[job_id]
            job.script = script
            job.submitted -= self.step * (script.queued_steps + script.running_steps + 1)

    def params(self, inputs: dict[str, Any]) -> Any:
        """The parameters a job was given: the JSON of its uploaded params.json."""
        raw = self.fake.file_at(str(inputs.get("parameters")))
        return json.loads(raw) if raw is not None else None

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
        # guess: Everest refuses inputs the app does not declare and required ones left
        # out (the texts are not public). The client does not depend on it: everbake
        # sends the inputs its exported app declares; it keeps the tests honest.
        for name in inputs:
            if declared and name not in declared:
                return error(400, f"Unknown input: {name}")
        for name, decl in declared.items():
            if decl.get("required") and name not in inputs:
                return error(400, f"Missing input: {name}")
        with self.lock:
            job = FakeJob(
                id=secrets.token_hex(12),  # 24-hex ids (facts "Resources")
                name=str(body.get("name") or ""),
                app=app,
                inputs=inputs,
                script=self.plan({**inputs, "params": self.params(inputs)}, len(self.submissions)),
                submitted=time.monotonic(),
            )
            self.jobs[job.id] = job
            self.submissions.append(body)
        if self.runner is not None:
            job.live = {"state": "SUBMITTED"}
            threading.Thread(target=self.runner, args=(self, job), daemon=True).start()
        # sptp __submitJob and templet submit read id and state from the answer.
        return Reply(self.submit_status, {"id": job.id, "state": "SUBMITTED"})

    def _list(self, call: Call) -> Reply:
        # sptp getJobs: a JSON list of job documents (whether it pages is not public).
        if self.list_absent:
            return error(404, "Not Found")  # guess: text
        with self.lock:
            found = list(self.jobs.values())
            if self.list_limit is not None:
                found = found[-self.list_limit :]
            docs = [self._doc(j) for j in found]
        if self.list_without_result:
            docs = [{k: v for k, v in d.items() if k != "result"} for d in docs]
        return Reply(200, docs)

    def _get(self, call: Call) -> Reply:
        return Reply(200, self._doc(self._find(call)))  # sptp getJobStatus

    def _delete(self, call: Call) -> Reply:
        job = self._find(call)  # sptp deleteJob
        with self.lock:
            del self.jobs[job.id]
        return Reply(200)  # guess: sptp only checks that it is no error

    def _delete_by_name(self, call: Call) -> Reply:
        names = call.query.get("name") or []  # sptp deleteJobs: DELETE /api/jobs?name=
        with self.lock:
            for job_id in [j.id for j in self.jobs.values() if j.name in names]:
                del self.jobs[job_id]
        return Reply(200)  # guess: as above

    def _cancel(self, call: Call) -> Reply:
        job = self._find(call)  # sptp cancelJob: POST .../cancel
        with self.lock:
            if self._doc(job)["state"] not in TERMINAL:
                job.cancelled_at = time.monotonic()
        return Reply(200)  # guess: sptp only checks that it is no error

    def _log(self, call: Call) -> Reply:
        job = self._find(call)
        text = "".join(line + "\n" for line in job.script.log)
        return Reply(200, text.encode(), "text/plain")  # sptp getJobLog streams it to a file

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
        doc: dict[str, Any] = {"id": job.id, "name": job.name}
        alias = f"{job.app['owner']}/{job.app['alias']}" if job.app["alias"] else None
        if self.old_documents:
            doc["app"] = job.app["id"]  # pyomo-everest at aadf9c8: job_json['app']
        else:
            doc["appId"] = job.app["id"]  # sptp Job.fromjson: appAlias, else appId
            doc["appAlias"] = alias
        doc["inputs"] = job.inputs
        if job.live is not None:
            return {**doc, **job.live}
        if job.cancelled_at is not None and now - job.cancelled_at >= self.step:
            return self._ended(job, doc, "CANCELLED", "cancelled: SIGINT after 0.1 s")
        if steps < script.queued_steps:
            doc["state"] = "SUBMITTED" if steps == 0 else "SCHEDULED"
            return doc
        running = steps - script.queued_steps
        if script.end == "never" or running < script.running_steps:
            doc["state"] = "RUNNING"  # no live status: no public client reads one
            return doc
        return self._ended(job, doc, script.end, script.final_status)

    def _ended(self, job: FakeJob, doc: dict[str, Any], state: str, status: str) -> dict:
        script = job.script
        doc["state"] = state
        if state in ("FAILED", "CANCELLED"):
            doc["info"] = job.script.info or state.lower()  # templet reads it here only
        if state == "CANCELLED" or not job.script.outputs:
            return doc  # no result (ssop_session.py "Job failed, no result available")
        log = "".join(line + "\n" for line in job.script.log)
        content = {
            "results.zip": _zip({"solution.json": json.dumps({"status": status})}),
            "status.txt": status + "\n",
            "stdout": log,
            "stderr": "",
            "version.txt": f"{job.inputs.get('version')} (0123abcd)\n",
            "stats.json": json.dumps(
                {
                    "cpu_seconds": script.cpu_seconds,
                    "wall_seconds": self.step * script.running_steps,
                    "peak_rss_bytes": script.peak_rss_bytes,
                }
            ),
        }
        if script.metrics is not None:
            content["metrics.json"] = json.dumps(script.metrics)
        if job.inputs.get("debug") == "true":
            content["debug.zip"] = _zip({"logs/stdout.log": log})
        # The app's outputMappings name the files; a file the task did not write is no
        # output (guess: how Everest reports a missing optional output).
        mappings = job.app.get("config", {}).get("outputMappings") or []
        result: dict[str, Any] = {}
        for mapping in mappings:
            data = content.get(mapping["file"])
            if data is not None:
                raw = data if isinstance(data, bytes) else data.encode()
                result[mapping["param"]] = self._publish(job.id, mapping["file"], raw)
        # sptp __checkJobs reads result on DONE and FAILED alike; ssop_session.py
        # downloads results of a failed job.
        doc["result"] = result
        return doc

    def _publish(self, job_id: str, name: str, data: bytes) -> str:
        """Store an output file; its URI in the shape this fake was asked for."""
        path = f"/api/files/jobs/{job_id}/{urllib.parse.quote(name)}"
        if self.output_uris == "host":
            assert self.file_host is not None, "output_uris='host' needs a FileHost"
            self.file_host.files[path] = data
            return self.file_host.url + path
        with self.fake.lock:
            self.fake.files.setdefault(path, data)
        return self.fake.url + path if self.output_uris == "url" else path


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()
