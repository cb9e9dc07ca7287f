"""Image spec loading: the examples load; every kind of bad spec is one clear line."""

from __future__ import annotations

import dataclasses
import re

import pytest

from everbake.errors import SpecError
from everbake.spec import list_images, load_spec


@pytest.mark.parametrize("name", list_images())
def test_example_images_load(name):
    spec = load_spec(name)
    assert spec.name == name
    assert spec.solvers
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_defaults_merge_under_the_image(write_spec, minimal_spec):
    spec = load_spec(write_spec(minimal_spec + '\n[system]\ntimezone = "Europe/Moscow"\n'))
    assert spec.system.timezone == "Europe/Moscow"
    assert spec.system.user == "everest"  # from defaults.toml, same table
    assert spec.build.gcp.zones[0] == "europe-west1-b"


def test_canonical_form_is_plain_data_without_paths(minimal_spec, write_spec):
    data = load_spec(write_spec(minimal_spec)).to_canonical()
    assert "source_path" not in data and "repo_root" not in data
    assert data["solvers"][0]["package"] == "highspy"
    assert str(write_spec(minimal_spec).parent) not in repr(data)


def problems_of(path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.problems


# (case id, TOML appended to/replacing the minimal spec, regex one problem must match)
BAD = [
    (
        "typo-top",
        'descripton = "x"',
        r"case\.toml:\d+: descripton: unknown key; did you mean 'description'\?",
    ),
    (
        "typo-nested",
        "[build.gcp]\nzone = 'x'",
        r":\d+: build\.gcp\.zone: unknown key; did you mean 'zones'\?",
    ),
    (
        "wrong-type-int",
        "[build.gcp]\ndisk_size_gb = '20'",
        r"build\.gcp\.disk_size_gb: expected an integer",
    ),
    (
        "wrong-type-bool",
        "[build.yandex]\npreemptible = 'yes'",
        r"build\.yandex\.preemptible: expected true or false",
    ),
    ("wrong-type-list", "[python]\npackages = 'pulp==2.9.0'", r"python\.packages: expected a list"),
    ("wrong-type-table", "python = 3", r"python: expected a table"),
    (
        "unpinned-package",
        "[python]\npackages = ['pulp']",
        r"python\.packages\[0\]: 'pulp' is not pinned",
    ),
    ("bad-timezone", "[system]\ntimezone = 'UTC 3'", r"system\.timezone"),
    (
        "token-secret-unknown",
        "[agent]\ntoken_secret = 'agent_tokn'",
        r"agent\.token_secret: no secret named 'agent_tokn'; did you mean 'agent_token'\?",
    ),
    (
        "secret-value-inline",
        "[secrets.agent_token]\nvalue = 'hunter2'",
        r"secrets\.agent_token\.value: secret values never go in an image spec",
    ),
    ("secret-as-string", "[secrets]\nlicence = 'hunter2'", r"secrets\.licence: expected a table"),
    (
        "secret-mode",
        "[secrets.agent_token]\nmode = 'embedd'",
        r"secrets\.agent_token\.mode: unknown mode 'embedd'; did you mean 'embed'\?",
    ),
    (
        "embed-needs-env",
        "[secrets.lic]\nmode = 'embed'",
        r"secrets\.lic\.env: mode \"embed\" needs env",
    ),
    (
        "missing-template",
        "[agent]\nconfig_template = 'templates/agent/nope.j2'",
        r"agent\.config_template: file 'templates/agent/nope\.j2' does not exist",
    ),
    # Baked files are fingerprinted by their path in the repository: outside it is refused.
    (
        "ca-certificate-outside-repo",
        "[system]\nca_certificates = ['/etc/ssl/certs/ca-certificates.crt']",
        r"system\.ca_certificates\[0\]: '/etc/ssl/certs/ca-certificates\.crt' must be a path "
        r"inside the repository",
    ),
    (
        "template-outside-repo",
        "[agent]\nconfig_template = '../agent.conf.j2'",
        r"agent\.config_template: '\.\./agent\.conf\.j2' must be a path inside the repository",
    ),
    (
        "runtime-outside-repo",
        "[runtime]\nsource = '/opt/runtime'",
        r"runtime\.source: '/opt/runtime' must be a path inside the repository",
    ),
    ("zones-empty", "[build.gcp]\nzones = []", r"build\.gcp\.zones: empty"),
    ("core-fraction", "[build.yandex]\ncore_fraction = 30", r"build\.yandex\.core_fraction"),
]


@pytest.mark.parametrize("case,extra,pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_one_clear_line(write_spec, minimal_spec, case, extra, pattern):
    # Top-level keys must come before the first table header.
    top_level = not extra.startswith("[")
    text = f"{extra}\n{minimal_spec}" if top_level else f"{minimal_spec}\n{extra}\n"
    problems = problems_of(write_spec(text))
    assert any(re.search(pattern, p) for p in problems), problems
    assert all("\n" not in p and "Traceback" not in p for p in problems)
    assert not any("hunter2" in p for p in problems), "a secret's value was echoed"


SOLVER_BAD = [
    (
        "unknown-install",
        'install = "conda"\npackage = "x"\nversion = "1"',
        r"solvers\[0\]\.install: unknown install method 'conda'; use one of: pip, apt, script",
    ),
    ("install-typo", 'install = "aptt"\npackage = "x"\nversion = "1"', r"did you mean 'apt'\?"),
    ("pip-needs-package", 'install = "pip"\nversion = "1"', r'install = "pip" needs package'),
    (
        "version-type",
        'install = "pip"\npackage = "x"\nversion = 1',
        r"solvers\[0\]\.version: expected a string",
    ),
    (
        "script-missing-file",
        'install = "script"\nscript = "provisioning/solvers/nope.sh"\nsha256 = "'
        + "a" * 64
        + '"\nversion = "1"',
        r"file 'provisioning/solvers/nope\.sh' does not exist",
    ),
    (
        "script-no-sha",
        'install = "script"\nscript = "provisioning/10-base.sh"\nversion = "1"',
        r"solvers\[0\]\.sha256: needs the script's sha256",
    ),
    (
        "script-wrong-sha",
        'install = "script"\nscript = "provisioning/10-base.sh"\nsha256 = "'
        + "0" * 64
        + '"\nversion = "1"',
        r"solvers\[0\]\.sha256: does not match 'provisioning/10-base\.sh' "
        r"\(its sha256 is [0-9a-f]{64}\)",
    ),
    (
        "script-outside-repo",
        'install = "script"\nscript = "/etc/passwd"\nsha256 = "' + "0" * 64 + '"\nversion = "1"',
        r"must be a path inside the repository",
    ),
]


@pytest.mark.parametrize("case,body,pattern", SOLVER_BAD, ids=[b[0] for b in SOLVER_BAD])
def test_bad_solver(write_spec, case, body, pattern):
    text = f'name = "case"\nfamily = "everbake-case"\n\n[[solvers]]\nname = "s"\n{body}\n'
    problems = problems_of(write_spec(text))
    assert any(re.search(pattern, p) for p in problems), problems


@pytest.mark.parametrize(
    "family",
    ["Everbake", "1everbake", "everbake_x", "everbake-", "x" * 46, "ever.bake"],
)
def test_family_must_fit_cloud_naming(write_spec, family):
    text = f'name = "case"\nfamily = "{family}"\n'
    problems = problems_of(write_spec(text))
    assert any(p.split(": ", 2)[1] == "family" and "GCE/Yandex" in p for p in problems), problems


def test_empty_file(write_spec):
    (problem,) = problems_of(write_spec("\n  \n"))
    assert "case.toml: the file is empty" in problem


def test_not_toml(write_spec):
    (problem,) = problems_of(write_spec('name = "x"\n[[solvers\n'))
    assert re.search(r"case\.toml:\d+: not valid TOML", problem), problem


def test_all_problems_of_a_file_at_once(write_spec, minimal_spec):
    problems = problems_of(
        write_spec('descripton = "x"\n' + minimal_spec + '[build.gcp]\ndisk_size_gb = "big"\n')
    )
    assert len(problems) >= 2
    assert any("descripton" in p for p in problems) and any("disk_size_gb" in p for p in problems)


def test_line_numbers_point_at_the_key(write_spec, minimal_spec):
    path = write_spec(minimal_spec + '\n\n[build.gcp]\nmachine_typ = "e2"\n')
    (problem,) = problems_of(path)
    line = path.read_text().splitlines().index('machine_typ = "e2"') + 1
    assert (
        f"case.toml:{line}: build.gcp.machine_typ: unknown key; did you mean 'machine_type'?"
        in problem
    )


def test_unknown_image_name_suggests(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec("optimisation")
    assert "did you mean 'optimization'?" in str(info.value)


def test_missing_path(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.toml")
    assert "no such image spec file" in str(info.value)


def test_type_errors_and_rule_errors_are_reported_together(write_spec, minimal_spec):
    # A wrongly typed value must not hide the problems found by the rules
    # (family naming, install methods), nor cause follow-up noise about itself.
    text = minimal_spec.replace('family = "everbake-case"', 'family = "Bad_Family"')
    text += '[[solvers]]\nname = "cbc"\ninstall = "conda"\nversion = 2\n'
    text += '[python]\npackages = ["pulp==2.9.0", 3]\n'
    problems = problems_of(write_spec(text))
    assert any("family: 'Bad_Family' is not a valid image family" in p for p in problems)
    assert any("install method 'conda'" in p for p in problems)
    assert any("solvers[1].version: expected a string" in p for p in problems)
    assert any("python.packages[1]: expected a string" in p for p in problems)
    assert sum("solvers[1].version" in p for p in problems) == 1
    assert not any("empty version" in p for p in problems)


def test_gcp_build_vm_options_have_safe_defaults_and_are_checked(write_spec, minimal_spec):
    from everbake.errors import SpecError
    from everbake.spec import load_spec

    gcp = load_spec(write_spec(minimal_spec)).build.gcp
    assert (gcp.network, gcp.use_os_login, gcp.service_account, gcp.scopes) == ("", False, "", ())
    bad = minimal_spec + (
        '\n[build.gcp]\nservice_account = "not-an-email"\nscopes = ["cloud-platform"]\n'
    )
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(bad))
    text = str(caught.value)
    assert "build.gcp.service_account" in text and "build.gcp.scopes[0]" in text
    only_scopes = minimal_spec + (
        '\n[build.gcp]\nscopes = ["https://www.googleapis.com/auth/devstorage.read_only"]\n'
    )
    with pytest.raises(SpecError, match=r"set build\.gcp\.service_account too"):
        load_spec(write_spec(only_scopes))
