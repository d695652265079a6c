"""The library's shape (ARCHITECTURE.md), checked from its source: layers that import only
downward, wings that never import each other, no circle, no private name or function-local
import across modules, no results/ path, and a reason beside every long parameter list."""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cmbnn"

# The floors, bottom to top: a module may import its own floor and the floors below it.
CORE = ("config", "io", "seeding", "settings", "projection", "harmonics", "names", "units")
LAYERS = [CORE, ("planck",), ("sky",), ("patches",), ("analysis",), ("nn",), ("plotting",), ("cenn", "inpainting", "dust")]
WINGS = set(LAYERS[-1])
FLOOR = {part: level for level, parts in enumerate(LAYERS) for part in parts}
MAX_PARAMETERS = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def top(module: str) -> str:
    """The room of a module: its package under cmbnn, or the core module itself."""
    return module.split(".")[1] if module != "cmbnn" else "cmbnn"


def cmbnn_imports(path: Path):
    """(imported module, names, inside a function?) for every import of cmbnn in a file."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}: relative import (the library imports absolutely)"
                if child.module and child.module.split(".")[0] == "cmbnn":
                    found.append((child.module, [a.name for a in child.names], in_function))
            elif isinstance(child, ast.Import):
                found.extend((a.name, [], in_function) for a in child.names if a.name.split(".")[0] == "cmbnn")
            visit(child, inside)

    visit(tree, False)
    return found


def edges():
    """module -> the cmbnn modules it imports (a name that is a submodule counts as that module)."""
    graph = {}
    for name, path in MODULES.items():
        targets = set()
        for module, names, _ in cmbnn_imports(path):
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
            targets.update(subs or [module])
        graph[name] = targets - {name}
    return graph


def test_every_module_sits_on_a_known_floor():
    unknown = sorted(n for n in MODULES if n != "cmbnn" and top(n) not in FLOOR)
    assert not unknown, f"modules outside the package map of ARCHITECTURE.md: {unknown}"


def test_imports_go_down_and_wings_never_import_each_other():
    wrong = []
    for name, targets in edges().items():
        if name == "cmbnn":
            continue
        for target in targets:
            here, there = top(name), top(target)
            if here in WINGS and there in WINGS and here != there:
                wrong.append(f"{name} -> {target} (a wing imports another wing)")
            elif here != there and FLOOR[there] > FLOOR[here]:
                wrong.append(f"{name} -> {target} (up from floor {FLOOR[here]} to {FLOOR[there]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph, state, cycle = edges(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycle, f"import cycles: {cycle}"


def test_no_private_name_or_function_local_import_across_modules():
    wrong = []
    for name, path in MODULES.items():
        for module, names, in_function in cmbnn_imports(path):
            wrong += [f"{name} imports the private {module}.{n}" for n in names if n.startswith("_")]
            if in_function:
                wrong.append(f"{name} imports {module} inside a function (import it at module level)")
    assert not wrong, "\n".join(wrong)


def test_the_library_names_no_results_path():
    hits = [f"{p.relative_to(SRC)}:{i}" for p in MODULES.values() for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"""["']results/""", line)]
    assert not hits, f"results/ paths belong to the rules (rules/*.smk), not the library: {hits}"


def test_long_parameter_lists_say_why():
    silent = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if len(names) > MAX_PARAMETERS and not lines[first - 2].strip().startswith("# More than 8 parameters"):
                    silent.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({len(names)})")
    assert not silent, f"functions with more than {MAX_PARAMETERS} parameters and no '# More than 8 parameters: why' above them: {silent}"

