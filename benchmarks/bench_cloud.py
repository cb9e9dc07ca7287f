"""Cloud lookups against the loopback fakes: SDK import cost, one lookup, a full
up-to-date check, `invoke plan` (with and without the exists/action lookups) and
an up-to-date build-image of every image in images/ on both providers. Figures
are ratios against baselines measured in this run (a bare interpreter start; an
empty HTTP round trip on loopback).

    python benchmarks/bench_cloud.py [--images 6] [--seed 200] [--repeat 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.gce import FakeGce  # noqa: E402
from tests.fakes.yandex_grpc import FakeYandex  # noqa: E402

PROJECT, FOLDER = "bench-project", "b1gbench"


def fresh(code: str, repeat: int = 5) -> float:
    """Median wall time of a fresh interpreter running ``code``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_call(func, repeat: int) -> float:
    func()  # warm: connections, endpoint discovery
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seed(gce: FakeGce, yc: FakeYandex, count: int) -> list[str]:
    from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value

    now = datetime.now(timezone.utc)
    fingerprints = [f"{i:064x}" for i in range(count)]
    for i, fp in enumerate(fingerprints):
        labels = {FINGERPRINT_LABEL: fingerprint_label_value(fp)}
        created = now - timedelta(hours=i)
        gce.add_image(PROJECT, f"fam-{i}", "fam", labels, created=created)
        yc.add_image(FOLDER, f"fam-{i}", "fam", labels, created=created)
    return fingerprints


CHECK = """
import sys, time, json
start = time.perf_counter()
sys.path.insert(0, {root!r})
from google.auth.credentials import AnonymousCredentials
from everbake.stores.gcp import GcpImageStore
from everbake.stores.yandex import YandexImageStore
gcp = GcpImageStore({project!r}, AnonymousCredentials(), endpoint={gce!r})
yc = YandexImageStore({folder!r}, token={token!r}, endpoint={yc!r},
                      root_certificates={roots!r})
found = 0
for fp in {fps!r}:
    found += gcp.find_by_fingerprint(fp) is not None
    found += yc.find_by_fingerprint(fp) is not None
print(json.dumps({{"seconds": time.perf_counter() - start, "found": found}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=6, help="lookups per provider (specs x layers)"
    )
    parser.add_argument("--seed", type=int, default=200, help="images in the project/folder")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    bare = fresh("pass")
    gce_import = fresh("import google.cloud.compute_v1")
    yc_import = fresh("import yandexcloud, yandex.cloud.compute.v1.image_service_pb2_grpc")
    print(f"interpreter start (baseline)      {bare * 1000:8.1f} ms")
    print(
        f"import google.cloud.compute_v1    {gce_import * 1000:8.1f} ms  "
        f"{gce_import / bare:6.1f}x baseline, +{(gce_import - bare) * 1000:.0f} ms"
    )
    print(
        f"import yandexcloud (+compute)     {yc_import * 1000:8.1f} ms  "
        f"{yc_import / bare:6.1f}x baseline, +{(yc_import - bare) * 1000:.0f} ms"
    )

    with FakeGce(projects=[PROJECT]) as gce, FakeYandex() as yc:
        fingerprints = seed(gce, yc, args.seed)
        from google.auth.credentials import AnonymousCredentials

        from everbake.stores.gcp import GcpImageStore
        from everbake.stores.yandex import YandexImageStore

        host, port = gce.endpoint.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))

        def empty_round_trip() -> None:
            conn.request("GET", "/empty")
            conn.getresponse().read()

        baseline = median_call(empty_round_trip, args.repeat)
        gcp = GcpImageStore(PROJECT, AnonymousCredentials(), endpoint=gce.endpoint)
        ycs = YandexImageStore(
            FOLDER, token=yc.iam_token, endpoint=yc.endpoint, root_certificates=yc.root_certificates
        )
        target = fingerprints[args.seed // 2]
        gcp_find = median_call(lambda: gcp.find_by_fingerprint(target), args.repeat)
        yc_find = median_call(lambda: ycs.find_by_fingerprint(target), args.repeat)
        print(f"empty HTTP round trip (baseline)  {baseline * 1000:8.2f} ms")
        print(
            f"gcp find_by_fingerprint           {gcp_find * 1000:8.2f} ms  "
            f"{gcp_find / baseline:6.1f}x baseline"
        )
        print(
            f"yandex find_by_fingerprint        {yc_find * 1000:8.2f} ms  "
            f"{yc_find / baseline:6.1f}x baseline  ({args.seed} images in the folder)"
        )

        chosen = fingerprints[: args.images]
        code = CHECK.format(
            root=str(ROOT),
            project=PROJECT,
            gce=gce.endpoint,
            folder=FOLDER,
            token=yc.iam_token,
            yc=yc.endpoint,
            roots=yc.root_certificates,
            fps=chosen,
        )
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
        )
        wall = time.perf_counter() - start
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["found"] == 2 * len(chosen), result
        print(
            f"up-to-date check, {len(chosen)} images x 2 providers, fresh process: "
            f"{wall:.2f} s wall ({result['seconds']:.2f} s inside, imports included); "
            f"{wall / bare:.1f}x interpreter start; target < 3 s"
        )
    flows(bare)


PLAN = """
import os, sys
from pathlib import Path
from everbake import build_plan as plan
from everbake.providers import get
from everbake.spec import list_images, load_spec
images = Path(os.environ["INVOKE_EVERBAKE_IMAGES_DIR"])
specs = [load_spec(name, images) for name in list_images(images)]
chosen = [get(name) for name in ("local", "gcp", "yandex")]
rows = plan.add_status(plan.plan_rows(specs, chosen), specs, chosen)
assert all(r["exists"] is True for r in rows if r["provider"] != "local"), rows
print(plan.format_table(rows, plan.STATUS_COLUMNS))
"""

UP_TO_DATE = """
import os
from pathlib import Path
from everbake.bake import build_image
from everbake.spec import list_images
from everbake.providers import get
images = Path(os.environ["INVOKE_EVERBAKE_IMAGES_DIR"])
for name in list_images(images):
    for provider in ("gcp", "yandex"):
        assert build_image(name, get(provider), images_dir=images).up_to_date
"""


def timed(argv: list[str], env: dict[str, str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=ROOT, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pinned_images(tmp: Path) -> Path:
    """images/ with every agent pinned (cloud builds refuse an unpinned one); the
    pin is never fetched: every image is up to date."""
    from everbake.pinagent import set_agent_keys

    images = tmp / "images"
    images.mkdir()
    for path in (ROOT / "images").glob("*.toml"):
        text = path.read_text()
        if path.name != "defaults.toml":
            text = set_agent_keys(text, {"sha256": "0" * 64})
        (images / path.name).write_text(text)
    return images


def seed_specs(gce: FakeGce, yc: FakeYandex, images: Path) -> int:
    """Both layers of every image spec, in both fakes: everything is up to date."""
    from everbake import naming
    from everbake.fingerprint import fingerprints
    from everbake.labels import FINGERPRINT_LABEL, fingerprint_label_value
    from everbake.spec import list_images, load_spec

    count = 0
    for name in list_images(images):
        spec = load_spec(name, images)
        fps = fingerprints(spec)
        for layer in ("base", "image"):
            labels = {FINGERPRINT_LABEL: fingerprint_label_value(fps.of(layer))}
            image = naming.image_name(spec, fps, layer)
            gce.add_image(PROJECT, image, naming.family(spec, layer), labels)
            yc.add_image(FOLDER, image, naming.family(spec, layer), labels)
        count += 1
    return count


def flows(bare: float) -> None:
    """`invoke plan` and up-to-date build-image in fresh processes, as a user runs them."""
    from tests.cloud.test_build_flow_cloud import service_account_key

    with (
        FakeGce(projects=[PROJECT]) as gce,
        FakeYandex() as yc,
        tempfile.TemporaryDirectory() as tmp,
    ):
        images = pinned_images(Path(tmp))
        specs = seed_specs(gce, yc, images)
        ca = Path(tmp) / "ca.pem"
        ca.write_bytes(yc.root_certificates)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "YC_", "EVERBAKE_"))
        }
        env.update(
            PYTHONPATH=str(ROOT),
            GOOGLE_APPLICATION_CREDENTIALS=str(
                service_account_key(Path(tmp) / "sa.json", f"{gce.endpoint}/token")
            ),
            GOOGLE_CLOUD_PROJECT=PROJECT,
            EVERBAKE_GCE_ENDPOINT=gce.endpoint,
            YC_TOKEN=yc.iam_token,
            YC_FOLDER_ID=FOLDER,
            EVERBAKE_YANDEX_ENDPOINT=yc.endpoint,
            EVERBAKE_YANDEX_CA_FILE=str(ca),
            INVOKE_EVERBAKE_IMAGES_DIR=str(images),
        )
        invoke_plan = timed([sys.executable, "-m", "invoke", "plan", "--offline"], env)
        invoke_plan_live = timed([sys.executable, "-m", "invoke", "plan"], env)
        plan_status = timed([sys.executable, "-c", PLAN], env)
        one = timed(
            [sys.executable, "-m", "invoke", "build-image", "--provider", "gcp"], env, repeat=3
        )
        every = timed([sys.executable, "-c", UP_TO_DATE], env)
        print(
            f"invoke plan --offline (no lookups) {invoke_plan:7.2f} s  {invoke_plan / bare:6.1f}x "
            "interpreter start"
        )
        print(
            f"invoke plan (looks up every layer) {invoke_plan_live:7.2f} s  "
            f"{invoke_plan_live / bare:6.1f}x interpreter start"
        )
        print(
            f"plan + exists/action, {specs} images x (local, gcp, yandex): {plan_status:.2f} s  "
            f"{plan_status / bare:.1f}x interpreter start"
        )
        print(
            f"invoke build-image --provider gcp (up to date): {one:.2f} s  "
            f"{one / bare:.1f}x interpreter start"
        )
        print(
            f"up-to-date build-image, {specs} images x 2 providers, one process: {every:.2f} s  "
            f"{every / bare:.1f}x interpreter start; target < 3 s"
        )


if __name__ == "__main__":
    main()
