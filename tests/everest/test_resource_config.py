"""The resource config: what we produce passes the schema and its checks; broken
configs and configs that do not match their image are refused, one line each."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from everbake.errors import EverbakeError
from everbake.everest import resource
from everbake.fingerprint import fingerprints
from everbake.spec import list_images, load_spec


def _config(
    images_dir: Path, built: Callable[..., dict], provider: str = "gcp", name: str = "optimization"
):
    record = built(provider, name)
    spec = load_spec(name, images_dir)
    return spec, record, resource.build_config(spec, provider, record)


def test_the_schema_file_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(resource.schema())


@pytest.mark.parametrize("provider", ["gcp", "yandex"])
def test_every_config_we_produce_passes_schema_and_checks(
    provider: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    names = list_images(images_dir)
    assert len(names) >= 2
    for name in names:
        spec, record, config = _config(images_dir, built, provider, name)
        assert resource.problems(config, spec, record, fingerprints(spec).image) == [], name
        assert config["name"] == f"{spec.family}-{provider}"
        assert config["image"]["fingerprint"] == record["fingerprints"]["image"]


def test_gcp_fields(images_dir: Path, built: Callable[..., dict]) -> None:
    _, record, config = _config(images_dir, built, "gcp")
    assert config["location"] == {"project": "test-project", "zones": ["europe-west1-b"]}
    assert config["machine"] == {"machine_type": "n2-standard-4", "cores": 4}
    assert config["image"]["self_link"] == (
        "https://www.googleapis.com/compute/v1/projects/test-project/global/images/"
        + record["image_name"]
    )
    assert config["image"]["solvers"] == {"highs": "1.8.1", "cbc": "2.10.8+ds1-1"}
    assert config["scheduling"]["on_host_maintenance"] == "TERMINATE"
    assert config["scheduling"]["automatic_restart"] is False
    # The agent token comes from Everest, the metadata-mode secrets are all listed.
    assert config["metadata"] == [
        {
            "key": "everest-agent-token",
            "secret": "agent_token",
            "value_from": "everest-agent-token",
            "read_by": "the agent's unit at boot",
        }
    ]


def test_yandex_fields(images_dir: Path, built: Callable[..., dict]) -> None:
    _, record, config = _config(images_dir, built, "yandex")
    assert config["location"] == {"folder_id": "b1gtestfolder", "zones": ["ru-central1-a"]}
    assert config["machine"] == {
        "platform_id": "standard-v3",
        "cores": 4,
        "memory_gb": 16,
        "core_fraction": 100,
    }
    assert config["image"]["id"] == record["image_id"]


def _break(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(config)
    *parents, last = path.split(".")
    target = broken
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("kind", "something-else", "kind"),
        ("image.fingerprint", "not-hex", "image.fingerprint"),
        ("image.name", "Upper_Case", "image.name"),
        ("disk", KeyError, "(top level)"),
        ("scheduling.max_instances", 0, "scheduling.max_instances"),
        ("scheduling.preemptible", "yes", "scheduling.preemptible"),
        ("location.folder_id", "b1g", "location"),  # a gcp config with a yandex field
        ("metadata.0.value", "s3cret", "metadata.0"),  # never a secret's value
        ("service_account", "-----BEGIN PRIVATE KEY-----", "service_account"),
        ("extra", 1, "(top level)"),
    ],
)
def test_the_schema_rejects_broken_configs(
    path: str, value: Any, field: str, images_dir: Path, built: Callable[..., dict]
) -> None:
    _, _, config = _config(images_dir, built)
    lines = resource.schema_problems(_break(config, path, value))
    assert lines, path
    assert any(line.startswith(f"resource config field {field}:") for line in lines), lines


def test_a_service_account_reference_is_accepted(
    images_dir: Path, built: Callable[..., dict]
) -> None:
    _, _, config = _config(images_dir, built)
    config["service_account"] = "runner@test-project.iam.gserviceaccount.com"
    assert resource.schema_problems(config) == []


def test_wrong_fingerprint_is_refused_in_one_line(
    images_dir: Path, built: Callable[..., dict]
) -> None:
    spec, record, config = _config(images_dir, built)
    config["image"]["fingerprint"] = "f" * 64
    with pytest.raises(resource.ResourceConfigError) as refused:
        resource.check(config, spec, record, fingerprints(spec).image)
    assert str(refused.value).count("\n") == 0
    assert str(refused.value).startswith("image.fingerprint ffffffffffff is not the newest build")


def test_an_image_of_an_older_spec_is_refused(images_dir: Path, built: Callable[..., dict]) -> None:
    spec, record, config = _config(images_dir, built)
    lines = resource.problems(config, spec, record, "0" * 64)
    assert len(lines) == 1 and "was built from an older optimization spec" in lines[0]
    assert "invoke build-image --provider gcp --image optimization" in lines[0]


def test_disk_below_the_image_minimum_is_refused(
    images_dir: Path, built: Callable[..., dict]
) -> None:
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(spec_file.read_text() + "\n[resource]\ndisk_size_gb = 12\n")
    spec, record, config = _config(images_dir, built)
    assert resource.problems(config, spec, record, fingerprints(spec).image) == [
        "disk.size_gb 12 is below the image's minimum of 20 GB; set resource.disk_size_gb "
        ">= 20 in the image spec"
    ]


def test_a_metadata_secret_unaccounted_for_is_refused(
    images_dir: Path, built: Callable[..., dict]
) -> None:
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(
        spec_file.read_text()
        + '\n[secrets.licence]\nmode = "metadata"\nmetadata_key = "solver-licence"\n'
    )
    spec, record, config = _config(images_dir, built)
    assert [e["secret"] for e in config["metadata"]] == ["agent_token", "licence"]
    assert config["metadata"][1]["value_from"] == "operator"
    config["metadata"] = config["metadata"][:1]
    lines = resource.problems(config, spec, record, fingerprints(spec).image)
    assert lines == [
        "metadata: secret licence (key solver-licence) is not accounted for; every "
        "metadata-mode secret must be listed with where its value comes from"
    ]


def test_task_slots_above_cores_and_long_preemptible_idle_are_refused(
    images_dir: Path, built: Callable[..., dict]
) -> None:
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(
        spec_file.read_text() + "\n[resource]\ntask_slots = 8\nidle_timeout_minutes = 1440\n"
    )
    spec, record, config = _config(images_dir, built)
    lines = resource.problems(config, spec, record, fingerprints(spec).image)
    assert [line.split(" ")[0] for line in lines] == [
        "scheduling.task_slots",
        "scheduling.idle_timeout_minutes",
    ]


def test_the_local_provider_has_no_resource(images_dir: Path) -> None:
    spec = load_spec("optimization", images_dir)
    with pytest.raises(EverbakeError, match="no Everest resource runs local images"):
        resource.build_config(spec, "local", {})


def test_task_slots_above_cores_pass_when_the_spec_oversubscribes(
    images_dir: Path, built: Callable[..., dict]
) -> None:
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(spec_file.read_text() + "\n[resource]\ntask_slots = 8\n")
    spec, record, config = _config(images_dir, built)
    assert config["scheduling"]["oversubscribe"] is False
    assert resource.problems(config, spec, record, fingerprints(spec).image) == [
        "scheduling.task_slots 8 is more than the machine's 4 cores; lower resource.task_slots, "
        "choose a larger machine in [resource.<provider>], or set resource.oversubscribe = true"
    ]
    spec_file.write_text(spec_file.read_text() + "oversubscribe = true\n")
    spec, record, config = _config(images_dir, built)
    assert config["scheduling"]["oversubscribe"] is True
    assert resource.problems(config, spec, record, fingerprints(spec).image) == []


GCP_ACCOUNT = "runner@test-project.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


@pytest.mark.parametrize(
    ("provider", "table", "expected"),
    [
        (
            "gcp",
            f'[resource.gcp]\nservice_account = "{GCP_ACCOUNT}"\nscopes = ["{SCOPE}"]\n',
            {"service_account": GCP_ACCOUNT, "scopes": [SCOPE]},
        ),
        (
            "yandex",
            '[resource.yandex]\nservice_account_id = "ajelprpohp7r8e1pv7m2"\n',
            {"service_account": "ajelprpohp7r8e1pv7m2"},
        ),
    ],
)
def test_the_spec_service_account_reaches_the_config(
    provider: str, table: str, expected: dict, images_dir: Path, built: Callable[..., dict]
) -> None:
    _, _, plain = _config(images_dir, built, provider)
    assert "service_account" not in plain and "scopes" not in plain
    spec_file = images_dir / "optimization.toml"
    spec_file.write_text(spec_file.read_text() + "\n" + table)
    spec, record, config = _config(images_dir, built, provider)
    assert {k: config[k] for k in expected} == expected
    assert resource.problems(config, spec, record, fingerprints(spec).image) == []


@pytest.mark.parametrize(
    ("provider", "extra"),
    [
        ("gcp", {"scopes": [SCOPE]}),  # scopes without an account
        ("yandex", {"service_account": "ajelprpohp7r8e1pv7m2", "scopes": [SCOPE]}),
        ("gcp", {"service_account": GCP_ACCOUNT, "scopes": ["cloud-platform"]}),
    ],
)
def test_the_schema_refuses_scopes_out_of_place(
    provider: str, extra: dict, images_dir: Path, built: Callable[..., dict]
) -> None:
    _, _, config = _config(images_dir, built, provider)
    assert resource.schema_problems({**config, **extra}) != []
