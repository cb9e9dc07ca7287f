"""Image specs: images/<name>.toml (over images/defaults.toml) -> frozen ImageSpec.

schema.py holds the dataclasses and tables of accepted values, loader.py reads
and merges the TOML, convert.py builds the dataclasses from it, rules.py checks
what types cannot say. Importers use the names below.
"""

from everbake.spec.loader import display_path, list_images, load_spec, repo_root_of, resolve_path
from everbake.spec.schema import IMAGES_DIR, REPO_ROOT, ImageSpec

__all__ = [
    "IMAGES_DIR",
    "REPO_ROOT",
    "ImageSpec",
    "display_path",
    "list_images",
    "load_spec",
    "repo_root_of",
    "resolve_path",
]
