"""The layering of docs/ARCHITECTURE.md, checked on the source: each layer imports only layers before it
(function-level imports included), no module imports itself back through others, and a method is one
module that registers itself."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from edgeadapt import updates

SRC = Path(__file__).resolve().parents[1] / "src" / "edgeadapt"
LAYERS = [
    "core",
    "data",
    "models",
    "updates",
    "training",
    "inference",
    "routing",
    "loragen",
    "evaluation",
    "runs",
    "studies",
    "deploy",
    "reports",
    "cli",
]


def module_name(path: Path) -> str:
    parts = ["edgeadapt", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every edgeadapt module `path` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("edgeadapt")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeadapt"):
            for alias in node.names:  # `from edgeadapt.x import y`: y may be a module of its own
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1  # `edgeadapt` itself: __version__ only


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_every_module_sits_in_a_layer():
    assert all(layer(m) >= 0 for m in MODULES if m != "edgeadapt"), [m for m in MODULES if layer(m) < 0]


def test_no_layer_imports_a_later_one():
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(module)
    ]
    assert not upward, upward


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_a_method_is_one_module_that_registers_itself():
    """No module outside updates/ names a method: knowledge of methods lives in their registrations."""
    for name, method in updates.METHODS.items():
        module = SRC / "updates" / f"{name}.py"
        assert module.is_file(), f"method {name} should be updates/{name}.py"
        assert f'name="{name}"' in module.read_text()
        assert method.loader in updates.LOADERS
    decides = [  # code outside updates/ that compares against a method's name
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        if path.parent.name != "updates"
        for name in updates.METHODS
        if re.search(
            rf"""[=!]=\s*["']{name}["']|["']{name}["']\s*[=!]=|in \([^)]*["']{name}["']""", path.read_text()
        )
    ]
    assert not decides, decides


def test_no_test_module_imports_another():
    """Shared test code lives in tests/helpers.py or conftest.py, never in a test module another imports."""
    offenders = []
    for path in Path(__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name} imports {n}" for n in names if re.match(r"(tests\.)?test_", n)]
    assert not offenders, offenders


def test_every_module_is_under_400_lines():
    long = {
        str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) >= 400
    }
    assert not long, long


def test_verifying_and_unpacking_a_package_imports_no_torch():
    """What a device runs to verify and unpack any package (the archive) and what a llama.cpp device judges
    its health check by stay light: torch or transformers there would cost seconds per device command."""
    code = (
        "import sys, edgeadapt.deploy.archive, edgeadapt.deploy.health_rules; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
