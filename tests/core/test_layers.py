"""One-way layers (docs/architecture.md), read from the source: every module's imports, at module
level and inside functions, and module names handed to importlib as strings.

    apps    diffsem_apps        may import blocks and core
    blocks  gnuradio.diffsem    may import core, never the apps
    core    diffsem             never GNU Radio (gnuradio, pmt, osmosdr, uhd, soapy) nor the apps

Inside the core, the subpackages (and top-level modules) import each other without a cycle.
Tests follow the same layers by folder (tests/core, tests/blocks: nothing above them) and import
no private (underscore) module of the packages.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {  # layer -> (folder holding the top package, top package)
    "core": (ROOT / "python", "diffsem"),
    "blocks": (ROOT / "gr-diffsem", "gnuradio/diffsem"),
    "apps": (ROOT / "python", "diffsem_apps"),
}
GNU_RADIO = ("gnuradio", "pmt", "osmosdr", "uhd", "soapy")
FORBIDDEN = {
    "core": GNU_RADIO + ("diffsem_apps",),
    "blocks": ("diffsem_apps",),
    "apps": (),
}
MODULE_STRING = re.compile(r"^(diffsem|diffsem_apps|gnuradio\.diffsem)(\.\w+)*$")


def _modules(layer: str) -> dict[str, Path]:
    base, top = PACKAGES[layer]
    out = {}
    for path in sorted((base / top).rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


ALL = {name: path for layer in PACKAGES for name, path in _modules(layer).items()}


def _is_package(module: str) -> bool:
    path = ALL.get(module)
    return path is not None and path.name == "__init__.py"


def imports_of(module: str, path: Path, strings: bool = True) -> set[str]:
    """Absolute names of what `module` imports (function-level imports and importlib strings too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if _is_package(module) else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            if origin == "__future__":
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{origin}.{alias.name}"
                found.add(sub if sub in ALL else origin)
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and MODULE_STRING.match(node.value):
            if node.value in ALL:  # "diffsem_apps.radio" in a command table
                found.add(node.value)
    return found


def _hits(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", sorted(PACKAGES))
def test_no_upward_imports(layer):
    bad = []
    for module, path in _modules(layer).items():
        for target in sorted(imports_of(module, path)):
            if layer == "apps" or not _hits(target, FORBIDDEN[layer]):
                continue
            bad.append(f"{path.relative_to(ROOT)}: {module} imports {target}")
    assert not bad, f"{layer} imports a layer above it:\n" + "\n".join(bad)


def _unit(module: str) -> str:
    """The core's architectural unit of a module: its subpackage (diffsem.phy), else itself."""
    parts = module.split(".")
    if len(parts) >= 2 and _is_package(".".join(parts[:2])):
        return ".".join(parts[:2])
    return module


def core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in _modules("core").items():
        if module == "diffsem":  # the package root: version and paths only
            continue
        src = _unit(module)
        graph.setdefault(src, set())
        for target in imports_of(module, path):
            if _hits(target, ("diffsem",)) and target != "diffsem":
                dst = _unit(target)
                if dst != src:
                    graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_core_subpackages_import_each_other_without_cycles():
    graph = core_graph()
    found = cycles(graph)
    detail = [" <-> ".join(c) + ":\n" + "\n".join(f"    {a} -> {b}" for a in c for b in sorted(graph[a]) if b in c)
              for c in found]
    assert not found, "import cycles between core units:\n" + "\n".join(detail)


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_walk_sees_function_level_and_relative_imports():
    core = _modules("core")
    assert "diffsem.channel" in imports_of("diffsem.nn.train", core["diffsem.nn.train"])
    assert any(_hits(t, ("gnuradio",)) for t in imports_of("diffsem_apps.demo", ALL["diffsem_apps.demo"]))


def test_tests_import_no_private_module():
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for target in imports_of("tests." + path.stem, path, strings=False):
            if _hits(target, ("diffsem", "diffsem_apps", "gnuradio.diffsem")) and \
                    any(part.startswith("_") for part in target.split(".")):
                bad.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder, layer", [("core", "core"), ("blocks", "blocks")])
def test_tests_stay_in_their_layer(folder, layer):
    bad = []
    for path in sorted((ROOT / "tests" / folder).rglob("*.py")):
        for target in sorted(imports_of(f"tests.{folder}.{path.stem}", path, strings=False)):
            if _hits(target, FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not bad, "\n".join(bad)



def test_block_package_holds_one_public_block_per_file():
    """gnuradio.diffsem: each module (besides __init__, harness and private helpers) defines one
    public class, named as the file (and as GRC shows it)."""
    folder = ROOT / "gr-diffsem" / "gnuradio" / "diffsem"
    bad = []
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_") or path.stem == "harness":
            continue
        classes = [n.name for n in ast.parse(path.read_text()).body
                   if isinstance(n, ast.ClassDef) and not n.name.startswith("_")]
        if classes != [path.stem]:
            bad.append(f"{path.name}: {classes}")
    assert not bad, "\n".join(bad)
