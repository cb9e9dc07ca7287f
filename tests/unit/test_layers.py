"""Arrows point down: every import of the build side (module level, function level
and TYPE_CHECKING alike) goes to a module of the same or a lower layer, and no
import cycle exists. The layers are the ones docs/internals.md draws ("Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "everbake"

# Lowest first; a module belongs to the first layer one of whose prefixes it has.
LAYERS: list[tuple[str, ...]] = [
    # ground: no everbake import above these
    (
        "errors",
        "files",
        "ui",
        "proc",
        "templating",
        "check_line",
        "labels",
        "attempts",
        "watcher",
        "spec",
        "agent_standin",
        "taskproc",
        "image_packages",
    ),
    ("provision_env", "packer", "agent_python", "image_info"),
    ("fingerprint", "localbuild"),
    (
        "naming",
        "image_inputs",
        "settings",
        "stores",
        "agent_fetch",
        "runtime_wheel",
        "staging",
        "retirement",
    ),
    ("records", "image_lookup"),
    ("providers",),  # descriptions: nothing above them
    # what asks the providers: rendering, checks, plans, retirement, Everest, run-local
    (
        "render",
        "packer_dir",
        "pinagent",
        "check",
        "build_plan",
        "gc_images",
        "clean_builds",
        "ci",
        "runlocal",
        "everest",
    ),
    ("bake", "replay"),  # the flows, holding a provider
    ("taskutil",),
    (
        "tasks_agent",
        "tasks_build",
        "tasks_ci",
        "tasks_cloud",
        "tasks_everest",
        "tasks_jobs",
        "tasks_replay",
    ),
    ("tasks", "cli"),  # the collection, and the console script made of it
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["everbake", *parts])


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        pkg = mod if is_pkg else mod.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                found.add(prefix)
                found.update(f"{prefix}.{a.name}" for a in node.names)
        targets = set()
        for name in found:
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != mod:
                targets.add(name)
        edges[mod] = targets
    return edges


def layer_of(module: str) -> int:
    rest = module.removeprefix("everbake.").split(".")[0]
    if module == "everbake":
        return 0
    for number, names in enumerate(LAYERS):
        if rest in names:
            return number
    raise AssertionError(f"{module}: in no layer of tests/unit/test_layers.py; add it")


def test_every_import_points_down() -> None:
    upward = [
        f"{mod} (layer {layer_of(mod)}) imports {target} (layer {layer_of(target)})"
        for mod, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(mod)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_providers_import_no_flow() -> None:
    flows = ("bake", "render", "packer_dir", "build_plan", "gc_images", "check", "pinagent")
    for mod, targets in graph().items():
        if mod.startswith("everbake.providers"):
            bad = [t for t in targets if t.removeprefix("everbake.").split(".")[0] in flows]
            assert bad == [], mod
