"""What a provider is: everything the build side needs to know about one place to bake.

A provider class says how its Packer source is written (source type, plugin,
template variables, where each layer's files go), where it builds and how that
is found, how `invoke check` judges it, how its image store is opened, how a
lost build VM is recognised and confirmed, how old images are retired and how an
image is replaced. Code outside ``everbake.providers`` and ``everbake.stores``
asks these objects and never compares provider names (docs/internals.md:
"Adding a provider"). A provider is a description: it imports no flow and no
renderer; the flows (everbake.bake) hold it and ask it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from everbake import naming
from everbake.check_line import CheckLine
from everbake.errors import EverbakeError
from everbake.packer import Plugin
from everbake.retirement import Policy

if TYPE_CHECKING:
    from everbake.fingerprint import Fingerprints
    from everbake.settings import Settings
    from everbake.spec import ImageSpec
    from everbake.stores import ImageStore


@dataclass(frozen=True)
class GcTarget:
    """What gc-images retires from: a store, the family in it, and what it keeps
    besides the newest N."""

    store: ImageStore
    family: str
    # False: the images a published resource config names. True: the family is the
    # base caches every spec shares, so the current base of each spec is kept.
    shared_bases: bool = False


@dataclass(frozen=True)
class BuildSettings:
    """Build-VM-only choices made at build time (they never change a fingerprint).

    ``zone``/``preemptible`` default to the spec (first zone, spec's preemptible);
    the build code passes others when falling back after a preemption.
    """

    zone: str | None = None
    preemptible: bool | None = None
    project: str | None = None  # GCP project or Yandex folder id
    # A temporary name for the new image while it replaces one of the same
    # fingerprint (Yandex --force: names are unique, so build first, swap after).
    image_name: str | None = None
    # The build VM's name, unique per attempt, so a lost VM can be looked up.
    instance_name: str | None = None
    # What staging found and the scripts must be told (everbake.staging.agent_env):
    # staging runs before rendering, so no rendered file is patched afterwards.
    agent_env: Mapping[str, str] | None = None


class Provider:
    name: ClassVar[str]
    # Layers rendered as separate Packer directories (clouds: base and image).
    layers: ClassVar[tuple[str, ...]]
    source_type: ClassVar[str]  # the Packer source (builder) type
    plugin: ClassVar[Plugin | None] = None  # None: built into Packer
    # What `plan` calls a base layer that exists.
    reuse_action: ClassVar[str] = "reuse"
    # Templates under templates/: the source block and the build block.
    source_template: ClassVar[str]
    build_template: ClassVar[str]

    # The user Packer logs in as on a cloud build VM (hygiene removes it).
    ssh_username: ClassVar[str] = ""
    # Builds refuse a spec whose [agent] sha256 is unset (clouds: an image
    # published to many VMs must not bake whatever a moving ref holds today).
    needs_pinned_agent: ClassVar[bool] = False

    # -- rendering -------------------------------------------------------

    def template_vars(
        self,
        spec: ImageSpec,
        fps: Fingerprints,
        layer: str,
        paths: dict[str, Any],
        settings: BuildSettings,
        environ: Mapping[str, str],
    ) -> dict[str, Any]:
        """Values for inputs.auto.pkrvars.json (never a secret value)."""
        raise NotImplementedError

    def layer_dir(self, out_root: Path, spec: ImageSpec, layer: str) -> Path:
        """The Packer directory of ``layer``: build/<provider>/<image>/<layer>."""
        return out_root / self.name / spec.name / layer

    def manifest_path(self, dist_root: Path, spec: ImageSpec, layer: str) -> Path:
        """dist/builds/<provider>/<image>-<layer>.manifest.json."""
        return dist_root / "builds" / self.name / f"{spec.name}-{layer}.manifest.json"

    def render_paths(self, spec: ImageSpec, layer: str, directory: Path) -> dict[str, Any]:
        """Paths the template variables name, besides the manifest and the plan file."""
        return {}

    def validation_placeholders(self, values: Mapping[str, Any]) -> dict[str, str]:
        """PKR_VAR_* stand-ins `packer validate` needs for values known only at build time."""
        return {}

    def undeclared_vars(self, values: Mapping[str, Any]) -> list[str]:
        """Variables the templates use that the var file leaves to PKR_VAR_*."""
        return []

    def source_problems(self, parsed: Mapping[str, Any]) -> list[str]:
        """Structure problems of the parsed source blocks that packer validate misses."""
        return []

    def syntax_only(self, packer_version: tuple[int, int, int]) -> bool:
        """Whether this Packer can only check the syntax (it lacks the builder)."""
        return False

    def packer_hint(self, packer_version: tuple[int, int, int]) -> str:
        """What to add to a failed build's message about this Packer ('' for nothing)."""
        return ""

    # -- checks and stores -----------------------------------------------

    needs_specs_to_check: ClassVar[bool] = False

    def check(self, specs: Sequence[ImageSpec], environ: Mapping[str, str]) -> list[CheckLine]:
        """`invoke check` lines for this provider, cheap to expensive."""
        return []

    def retirement(self) -> Policy:
        """How gc-images retires old images here: delete what is beyond the newest N."""
        return Policy(deprecate_first=False)

    def gc_target(
        self, spec: ImageSpec, layer: str, settings: Settings, environ: Mapping[str, str]
    ) -> GcTarget:
        """The store and family gc-images retires ``layer`` of ``spec`` from."""
        raise NotImplementedError

    # -- what exists -----------------------------------------------------

    def layer_status(
        self,
        spec: ImageSpec,
        layers: Mapping[str, Mapping[str, Any]],
        settings: Settings,
        environ: Mapping[str, str],
        stores: dict[tuple[str, str], Any],
        offline: bool,
    ) -> dict[str, bool | str]:
        """Per layer: whether it exists, or why that cannot be told (for `plan`)."""
        raise NotImplementedError

    # -- shared helpers --------------------------------------------------

    def common_vars(self, spec: ImageSpec, fps: Fingerprints, layer: str) -> dict[str, Any]:
        return {
            "spec_name": spec.name,
            "layer": layer,
            "fingerprint": fps.of(layer),
            "image_name": naming.image_name(spec, fps, layer),
            "image_family": naming.family(spec, layer),
            "image_description": naming.description(spec, fps, layer),
            "image_labels": naming.labels(spec, fps, layer),
        }

    def resource_fields(self, spec: ImageSpec, record: Mapping[str, Any]) -> dict[str, Any]:
        """This provider's part of the Everest resource config (everbake.everest.resource):
        ``location``, ``machine``, ``network`` and extra ``image``/``scheduling`` fields."""
        raise EverbakeError(
            f"--provider {self.name}: no Everest resource runs {self.name} images; "
            "publish a gcp or yandex image (local images run with `invoke run-local`)"
        )
