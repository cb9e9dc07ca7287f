"""What `invoke check --provider gcp` verifies before any VM starts, beyond the image
API: the permissions a build needs (testIamPermissions on the project), the regional
quotas its build VM draws on (CPUS, PREEMPTIBLE_CPUS, IN_USE_ADDRESSES), and OS
Login, each failure with its fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from everbake.attempts import region_of
from everbake.check_line import CheckLine
from everbake.errors import EverbakeError
from everbake.spec import ImageSpec
from everbake.stores.gcp_vms import BUILD_PERMISSIONS, GcpBuildVms, PermissionCheckError

OS_LOGIN_PERMISSION = "compute.instances.osAdminLogin"  # in roles/compute.osAdminLogin
ROLES = "roles/compute.instanceAdmin.v1 and roles/iam.serviceAccountUser"
ENABLE_API = "gcloud services enable compute.googleapis.com --project {project}"


def build_checks(
    project: str,
    vms: GcpBuildVms,
    specs: Sequence[ImageSpec],
    vcpus: Callable[[str], int | None],
    packer_version: tuple[int, int, int] | None,
) -> list[CheckLine]:
    """Permissions, then quotas, then OS Login, for the ``specs`` building in ``project``."""
    lines = [_permissions(project, vms, specs)]
    lines.extend(_quotas(project, vms, specs, vcpus))
    lines.extend(_os_login(specs, packer_version))
    return lines


def _permissions(project: str, vms: GcpBuildVms, specs: Sequence[ImageSpec]) -> CheckLine:
    wanted = list(BUILD_PERMISSIONS)
    if any(s.build.gcp.use_os_login for s in specs):
        wanted.append(OS_LOGIN_PERMISSION)
    what = "gcp: permissions"
    try:
        granted = vms.granted(wanted)
    except PermissionCheckError as exc:
        if "accessNotConfigured" in exc.message or "has not been used" in exc.message:
            return CheckLine(
                what,
                False,
                f"{project}: the Compute Engine API is not enabled",
                ENABLE_API.format(project=project),
            )
        return CheckLine(
            what, False, f"{project}: cannot test permissions ({exc})", f"grant {ROLES}"
        )
    except (EverbakeError, OSError) as exc:
        return CheckLine(what, False, f"{project}: cannot test permissions ({exc})")
    missing = [p for p in wanted if p not in granted]
    if not missing:
        return CheckLine(what, True, f"{project}: all {len(wanted)} a build needs")
    roles = ROLES
    if OS_LOGIN_PERMISSION in missing:
        roles += " (and roles/compute.osAdminLogin: use_os_login = true needs sudo)"
    return CheckLine(
        what,
        False,
        f"{project}: missing {', '.join(missing)}",
        f"gcloud projects add-iam-policy-binding {project} --member=<the build account> "
        f"--role=<each of {roles}>",
    )


def _quotas(
    project: str,
    vms: GcpBuildVms,
    specs: Sequence[ImageSpec],
    vcpus: Callable[[str], int | None],
) -> list[CheckLine]:
    """Per region of the zones listed: room for the largest build VM."""
    needs: dict[str, tuple[int, bool]] = {}
    for spec in specs:
        build = spec.build.gcp
        cpus = vcpus(build.machine_type) or 2
        for zone in build.zones:
            old = needs.get(region_of(zone), (0, False))
            needs[region_of(zone)] = (max(old[0], cpus), old[1] or build.preemptible)
    lines = []
    fix = f"https://console.cloud.google.com/iam-admin/quotas?project={project}"
    for region, (cpus, preemptible) in sorted(needs.items()):
        what = f"gcp: quota {region}"
        try:
            quotas = vms.region_quotas(region)
        except EverbakeError as exc:
            lines.append(CheckLine(what, False, str(exc).splitlines()[0]))
            continue
        short = []
        for metric, need in (("CPUS", cpus), ("IN_USE_ADDRESSES", 1)):
            limit, usage = quotas.get(metric, (float("inf"), 0.0))
            if limit - usage < need:
                short.append(f"{metric} {limit - usage:g} free, a build needs {need}")
        if short:
            lines.append(
                CheckLine(
                    what,
                    False,
                    "; ".join(short),
                    f"request more quota ({fix}) or list zones of another region",
                )
            )
            continue
        note = ""
        if preemptible and "PREEMPTIBLE_CPUS" in quotas:
            limit, usage = quotas["PREEMPTIBLE_CPUS"]
            if limit - usage < cpus:
                # Quota 'PREEMPTIBLE_CPUS' exceeded: the build moves to a standard VM.
                note = (
                    f"; PREEMPTIBLE_CPUS {limit - usage:g} free: builds here use a standard "
                    "VM, which costs more"
                )
        free = quotas.get("CPUS", (float("inf"), 0.0))
        lines.append(CheckLine(what, True, f"CPUS {free[0] - free[1]:g} free{note}"))
    return lines


def _os_login(
    specs: Sequence[ImageSpec], packer_version: tuple[int, int, int] | None
) -> list[CheckLine]:
    lines = []
    if any(s.build.gcp.use_os_login for s in specs):
        lines.append(
            CheckLine(
                "gcp: os login",
                True,
                "use_os_login = true: Packer logs in as the account's OS Login user (not "
                "ssh_username), which hygiene removes; sudo needs roles/compute.osAdminLogin",
            )
        )
    if packer_version is not None and packer_version < (1, 7, 0):
        shown = ".".join(map(str, packer_version))
        lines.append(
            CheckLine(
                "gcp: os login",
                True,
                f"packer {shown} never writes enable-oslogin=FALSE: use_os_login = false is "
                "not honoured where the project enforces OS Login (constraints/"
                "compute.requireOsLogin); Packer >= 1.7 with googlecompute >= 1.2.0 honours it",
            )
        )
    return lines
