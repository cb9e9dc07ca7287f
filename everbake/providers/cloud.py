"""What the clouds share: a project/folder to build in, a Python SDK behind an image
store, credentials, a build VM that can be lost, and two Packer directories
(base and image) whose scripts run on that VM from an uploaded staging dir."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from everbake import image_packages, naming, provision_env
from everbake.attempts import SESSION_LOST, Loss, Signal, read_loss
from everbake.check_line import CheckLine
from everbake.errors import CloudError, CredentialsError, EverbakeError, RenderError, ToolError
from everbake.labels import LAYER_LABEL, SPEC_LABEL, label_value
from everbake.packer import VALIDATE_PLACEHOLDER
from everbake.providers.base import BuildSettings, GcTarget, Provider
from everbake.stores import BuildVmStore
from everbake.stores.build_vms import BUILD_LABEL, attempt_id

if TYPE_CHECKING:
    from everbake.fingerprint import Fingerprints
    from everbake.settings import Settings
    from everbake.spec import ImageSpec
    from everbake.stores import CloudImage, ImageStore

# Build one layer: (image_name) -> (image, manifest entry, attempt).
BuildLayer = Callable[..., tuple[Any, dict[str, Any], Any]]


@dataclass(frozen=True)
class Place:
    """How a cloud names the place it builds in, and how a user sets it."""

    key: str  # the build record's field, and the placeholder in an export
    noun: str  # what messages call it
    setting: str  # the image spec's field
    variables: tuple[str, ...]  # the environment's, first set wins
    fix: str  # one line for `invoke check`
    packer_var: str  # the template variable that receives it


@dataclass(frozen=True)
class Sdk:
    """The Python SDK behind the image store, and the extra that installs it."""

    module: str
    fix: str  # e.g. pip install 'everbake[gcp]'  (google-cloud-compute)


class CloudProvider(Provider):
    layers = ("base", "image")
    build_template = "cloud_build.pkr.hcl.j2"
    needs_specs_to_check = True
    place: ClassVar[Place]
    sdk: ClassVar[Sdk]
    # Packer console lines that mean the build VM was lost or could not be had
    # (everbake.attempts: where each line comes from).
    lost_vm_signals: ClassVar[tuple[Signal, ...]] = SESSION_LOST
    # The watcher (everbake.watcher): seconds between two looks at the build VM,
    # and the cloud's statuses that mean it took the VM.
    watch_interval: ClassVar[float] = 20.0
    lost_statuses: ClassVar[frozenset[str]] = frozenset()
    # Run packer with -on-error=abort and remove the VM ourselves once the cloud has
    # been asked about it (for a builder whose cleanup deletes the VM at once).
    keep_vm_on_error: ClassVar[bool] = False
    # Packer timeouts of every cloud source: a VM that vanishes without closing TCP
    # must not hang the SSH session (ssh_read_write_timeout is unset by default),
    # and image creation outlasts the 5 minute state_timeout default
    # (hashicorp/packer-plugin-googlecompute#164, hashicorp/packer#6887).
    ssh_read_write_timeout: ClassVar[str] = "5m"
    state_timeout: ClassVar[str] = "30m"

    # -- where it builds -------------------------------------------------

    def location_in_spec(self, spec: ImageSpec) -> str:
        """The project/folder the spec names ('' when it leaves it to the environment)."""
        raise NotImplementedError

    def env_variable(self, environ: Mapping[str, str]) -> tuple[str, str] | None:
        """(name, value) of the first set variable naming the place, None when none is."""
        for name in self.place.variables:
            if environ.get(name):
                return name, environ[name]
        return None

    def location_in_env(self, environ: Mapping[str, str]) -> str:
        found = self.env_variable(environ)
        return found[1] if found else ""

    def find_location(self, spec: ImageSpec, environ: Mapping[str, str]) -> str:
        """The spec's project/folder, else the environment's ('' when neither names one)."""
        return self.location_in_spec(spec) or self.location_in_env(environ)

    def location_of(self, spec: ImageSpec, environ: Mapping[str, str]) -> str:
        """Like `find_location`, but a missing project/folder is a one-line CredentialsError."""
        found = self.find_location(spec, environ)
        if found:
            return found
        place = self.place
        raise CredentialsError(
            f"{self.name}: no {place.noun} to build {spec.name} in: export "
            f"{place.variables[0]}=<{place.key}> or set {place.setting} in {spec.source_path}"
        )

    def location_of_env_or_fail(self, environ: Mapping[str, str]) -> str:
        """The environment's project/folder, or the one-line error naming the variable."""
        found = self.location_in_env(environ)
        if not found:
            raise CredentialsError(self.missing_location())
        return found

    def missing_location(self) -> str:
        """The one-line message for a store opened with no project/folder."""
        place = self.place
        return (
            f"{self.name}: no {place.noun}: set {place.setting} in the image spec or export "
            f"{place.variables[0]}=<{place.key}>"
        )

    # -- its image store and credentials ---------------------------------

    def credentials_hint(self, environ: Mapping[str, str]) -> CheckLine:
        """Whether ``environ`` holds credentials for this cloud (no network): the
        `<name>: credentials` line of `invoke check`."""
        raise NotImplementedError

    def open_store(self, location: str | None, environ: Mapping[str, str]) -> ImageStore:
        """The image store in ``location``; empty falls back to the environment.
        A missing SDK is one line naming the extra to install."""
        location = location or self.location_in_env(environ)
        if not location:
            raise CloudError(self.missing_location())
        if not self.sdk_installed():
            raise ToolError(f"{self.name}: {self.sdk.module} is not installed: {self.sdk.fix}")
        return self._open_store(location, environ)

    def _open_store(self, location: str, environ: Mapping[str, str]) -> ImageStore:
        raise NotImplementedError

    def open_build_vms(self, location: str, environ: Mapping[str, str]) -> Any:
        """The cloud's build VMs in ``location`` (status, leftovers, checks)."""
        raise NotImplementedError

    def watch_every(self, environ: Mapping[str, str]) -> float:
        """Seconds between the watcher's looks (EVERBAKE_WATCH_INTERVAL overrides)."""
        try:
            return float(environ.get("EVERBAKE_WATCH_INTERVAL") or self.watch_interval)
        except ValueError:
            return self.watch_interval

    def subnet_for(self, spec: ImageSpec, zone: str, found: Mapping[str, str]) -> str:
        """The subnet to send for a build in ``zone`` ('' for none); ``found`` is what
        a lookup in the cloud returned (zone -> subnet) when the spec names none."""
        return ""

    def subnet_fix(self, spec: ImageSpec, zones: Sequence[str]) -> str:
        """How to name the subnets in the spec."""
        return ""

    def serial_log(self, layer_dir: Path) -> Path | None:
        """Where the builder writes the build VM's serial console on failure (None: nowhere)."""
        return None

    def subnets_to_look_up(self, spec: ImageSpec) -> bool:
        """Whether the build must find its subnets in the cloud before a VM starts."""
        return False

    def sdk_installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.sdk.module) is not None
        except ModuleNotFoundError:
            return False

    # -- lost build VMs ----------------------------------------------------

    def lost_vm(self, output: Iterable[str]) -> Loss | None:
        """How a failed Packer run lost its build VM, or None when the output shows an
        ordinary failure, which is not worth retrying."""
        return read_loss(self.lost_vm_signals, output)

    def confirm_lost(self, store: ImageStore, zone: str, instance: str) -> bool:
        """Whether the cloud's API shows that it took the suspect build VM ``instance``
        (its name) in ``zone``; False when the store cannot tell."""
        return isinstance(store, BuildVmStore) and store.build_vm_lost(zone, instance)

    # -- baking ----------------------------------------------------------

    def artifact_id(self, image: CloudImage) -> str:
        """What Packer's manifest names as the artifact of ``image``."""
        raise NotImplementedError

    def replace(
        self,
        store: ImageStore,
        existing: CloudImage,
        name: str,
        family: str,
        build: BuildLayer,
    ) -> tuple[Any, dict[str, Any], Any, CloudImage | None]:
        """Build the image layer anew over ``existing`` (same fingerprint, --force);
        (image, manifest entry, attempt, the image it replaced)."""
        raise NotImplementedError

    def gc_target(
        self, spec: ImageSpec, layer: str, settings: Settings, environ: Mapping[str, str]
    ) -> GcTarget:
        store = self.open_store(self.location_in_spec(spec), environ)
        return GcTarget(store, naming.family(spec, layer))

    def layer_status(
        self,
        spec: ImageSpec,
        layers: Mapping[str, Mapping[str, Any]],
        settings: Settings,
        environ: Mapping[str, str],
        stores: dict[tuple[str, str], Any],
        offline: bool,
    ) -> dict[str, bool | str]:
        """Per layer: found or not, or the reason it is unknown."""
        if offline:
            return dict.fromkeys(layers, "--offline")
        hint = self.credentials_hint(environ)
        if not hint.ok:
            return dict.fromkeys(layers, f"no credentials: {hint.fix}")
        out: dict[str, bool | str] = {}
        try:
            location = self.location_of(spec, environ)
            key = (self.name, location)
            if key not in stores:
                stores[key] = self.open_store(location, environ)
            for layer, row in layers.items():
                found = stores[key].find_by_fingerprint(row["fingerprint"], row["family"])
                out[layer] = found is not None
        except EverbakeError as exc:
            reason = str(exc).splitlines()[0]
            return {layer: out.get(layer, f"lookup failed: {reason}") for layer in layers}
        return out

    # -- checks ----------------------------------------------------------

    def check(self, specs: Sequence[ImageSpec], environ: Mapping[str, str]) -> list[CheckLine]:
        """Cheap to expensive; a step that fails leaves out the steps that need it:
        SDK (and Packer's builder) -> credentials -> project/folder -> one API call."""
        sdk = self.sdk_installed()
        module = self.sdk.module
        lines = [
            CheckLine(
                f"{self.name}: sdk",
                sdk,
                module if sdk else f"{module} is not installed",
                self.sdk.fix,
            )
        ]
        lines.extend(self.packer_checks())
        hint = self.credentials_hint(environ)
        lines.append(hint)
        locations = self._locations(specs, environ)
        place = self.place
        if locations:
            shown = ", ".join(sorted(locations))
            lines.append(CheckLine(f"{self.name}: {place.noun}", True, shown))
        else:
            lines.append(
                CheckLine(
                    f"{self.name}: {place.noun}",
                    False,
                    f"{place.variables[0]} is not set (nor {place.setting})",
                    place.fix,
                )
            )
        if sdk and hint.ok and locations:
            api = self._api_checks(locations, environ)
            lines.extend(api)
            if all(line.ok for line in api):
                for location in sorted(locations):
                    here = [s for s in specs if self.find_location(s, environ) == location]
                    lines.extend(self.build_checks(location, here, environ))
        return lines

    def login_user(self, spec: ImageSpec) -> str:
        """The user Packer logs in as on the build VM, for hygiene to remove (EB_BUILD_USER);
        provision_env.SESSION_USER when only the VM knows it."""
        return self.ssh_username

    def build_checks(
        self, location: str, specs: Sequence[ImageSpec], environ: Mapping[str, str]
    ) -> list[CheckLine]:
        """What a build in ``location`` needs besides the image API (permissions,
        quotas, subnets), checked before any VM starts."""
        return []

    def packer_checks(self) -> list[CheckLine]:
        """Whether the Packer here can build this cloud's source (none to add by default)."""
        return []

    def _api_checks(
        self, locations: dict[str, list[str]], environ: Mapping[str, str]
    ) -> list[CheckLine]:
        """One real call per location and family: list the family's images."""
        lines = []
        for location, families in sorted(locations.items()):
            try:
                store = self.open_store(location, environ)
                counts = [f"{len(store.list_family(f))} in {f}" for f in families]
            except EverbakeError as exc:
                lines.append(CheckLine(f"{self.name}: api", False, str(exc).splitlines()[0]))
                continue
            detail = f"{location}: images " + ", ".join(counts) if counts else location
            lines.append(CheckLine(f"{self.name}: api", True, detail))
        return lines

    def _locations(
        self, specs: Sequence[ImageSpec], environ: Mapping[str, str]
    ) -> dict[str, list[str]]:
        """Project/folder -> the families of the specs that build there."""
        out: dict[str, list[str]] = {}
        for spec in specs:
            try:
                location = self.location_of(spec, environ)
            except EverbakeError:
                continue
            out.setdefault(location, [])
            if spec.family not in out[location]:
                out[location].append(spec.family)
        if not specs:
            found = self.location_in_env(environ)
            if found:
                return {found: []}
        return out

    # -- rendering -------------------------------------------------------

    def render_paths(self, spec: ImageSpec, layer: str, directory: Path) -> dict[str, Any]:
        """The staging dir (filled by the build, uploaded to the VM) and the layer's scripts."""
        if not provision_env.scripts(spec.repo_root, layer):
            raise RenderError(
                f"no provisioning scripts for the {layer} layer in "
                f"{spec.repo_root / 'provisioning'}; restore provisioning/NN-*.sh"
            )
        # The first-boot wait runs first on the VM, then the layer's scripts.
        scripts = [p.resolve() for p in provision_env.cloud_scripts(spec.repo_root, layer)]
        return {"staging": (directory / "staging").resolve(), "scripts": scripts}

    def build_table(self, spec: ImageSpec) -> Any:
        """The spec's build.<cloud> table."""
        raise NotImplementedError

    def cloud_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Any],
        settings: BuildSettings,
        environ: Mapping[str, str],
    ) -> dict[str, Any]:
        """What both clouds set alike."""
        build = self.build_table(spec)
        common = self.common_vars(spec, fps, layer)
        if settings.image_name:
            common["image_name"] = settings.image_name
        labels = {SPEC_LABEL: label_value(spec.name), LAYER_LABEL: layer}
        if settings.instance_name:
            common["instance_name"] = settings.instance_name
            # The attempt id: how `invoke clean-builds` knows what a build left.
            labels[BUILD_LABEL] = attempt_id(settings.instance_name)
        # The project/folder: the build settings', the spec's, or the environment's.
        place = settings.project or self.find_location(spec, environ)
        if place:
            common[self.place.packer_var] = place
        env_vars = provision_env.provisioning_env(
            spec, layer, provision_env.DEFAULT_STAGING, build_user=self.login_user(spec)
        )
        if layer == "image" and settings.agent_env is not None:
            env_vars.update(settings.agent_env)
        return {
            **common,
            "zone": settings.zone or build.zones[0],
            "preemptible": build.preemptible
            if settings.preemptible is None
            else settings.preemptible,
            "disk_size_gb": build.disk_size_gb,
            "build_labels": labels,
            "ssh_username": self.ssh_username,
            # Not SHA-1 RSA, which Debian 12's OpenSSH refuses from Packer < 1.8.1.
            "temporary_key_pair_type": "ed25519",
            "ssh_read_write_timeout": self.ssh_read_write_timeout,
            "state_timeout": self.state_timeout,
            "staging_dir": str(paths["staging"]),
            "scripts": [str(p) for p in paths["scripts"]],
            "manifest_path": str(paths["manifest"]),
            "remote_staging": provision_env.DEFAULT_STAGING,
            "script_env": [f"{k}={v}" for k, v in env_vars.items()],
            # The image layer downloads the image's package list here (build record).
            **(
                {"packages_path": str(Path(paths["staging"]).parent / image_packages.FILE)}
                if layer == "image"
                else {}
            ),
        }

    def undeclared_vars(self, values: Mapping[str, Any]) -> list[str]:
        # Where a cloud builds comes from PKR_VAR_* when the spec leaves it out.
        var = self.place.packer_var
        return [] if var in values else [var]

    def validation_placeholders(self, values: Mapping[str, Any]) -> dict[str, str]:
        return {f"PKR_VAR_{name}": VALIDATE_PLACEHOLDER for name in self.undeclared_vars(values)}
