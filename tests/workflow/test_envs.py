"""The conda envs (envs/*.yaml) used by `--sdm conda`: each rule's env provides what its script imports,
and the pins follow requirements.lock (the versions the tests run with).

Rules are found by parsing rules/*.smk, so rules added later are checked too. A script's imports are
its own (anywhere in the file), those of the local `_helpers` module, and those of the cmbnn code it
uses, followed transitively (see third_party_imports). An import guarded by `except ImportError` is optional.
"""

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from rule_text import rule_blocks

SCRIPTS = ROOT / "workflow" / "scripts"
SRC = ROOT / "src"

# Import name -> conda-forge package. An import missing here fails the test: add it (and the package to the env).
IMPORT_TO_CONDA = {
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "h5py": "h5py",
    "healpy": "healpy",
    "pymaster": "namaster",
    "ducc0": "ducc0",
    "camb": "camb",
    "astropy": "astropy",
    "fitsio": "fitsio",
    "yaml": "pyyaml",
    "jsonschema": "jsonschema",
    "requests": "requests",
    "urllib3": "urllib3",
    "matplotlib": "matplotlib-base",
    "PIL": "pillow",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "tensorboard": "tensorboard",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
}
# Snakemake's script preamble puts its own package on sys.path; _helpers puts src/ (cmbnn) there.
# jax and torch are the other Keras backends: cmbnn.nn.training imports them only when KERAS_BACKEND names them.
PROVIDED = {"snakemake", "_helpers", "cmbnn", "jax", "torch"}

# conda-forge name -> requirements.lock name, where they differ.
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib", "pyyaml": "PyYAML", "tensorflow": "tensorflow_cpu"}
# Env packages whose pin may differ from the lock, and why.
PIN_EXCEPTIONS = {
    # setup.sh builds pymaster 3.0.1 from PyPI (not in the lock); conda-forge's namaster stops at 2.4.
    "namaster": "conda-forge carries namaster 2.4 at most",
}


def _path_of(block, key):
    m = re.search(r"""["']([^"']+)["']""", block[key])
    assert m, f"{block['file'].name}: {key}: {block[key]!r} is not a plain path string"
    return (block["file"].parent / m.group(1)).resolve()


def _optional(node, parents):
    """True for an import inside `try: ... except ImportError` (or ModuleNotFoundError)."""
    for parent in parents:
        if isinstance(parent, ast.Try):
            for handler in parent.handlers:
                names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    if any(node is n or node in ast.walk(n) for n in parent.body):
                        return True
    return False


def _import_nodes(root, package, module_level_only):
    """(absolute module, imported names) of the non-optional imports under `root`."""
    found = []

    def visit(node, parents, in_function):
        for child in ast.iter_child_nodes(node):
            func = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and not (module_level_only and in_function):
                if not _optional(child, parents):
                    if isinstance(child, ast.Import):
                        found.extend((a.name, []) for a in child.names)
                    elif child.level == 0:
                        found.append((child.module, [a.name for a in child.names]))
                    else:
                        base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                        found.append((f"{base}.{child.module}" if child.module else base, [a.name for a in child.names]))
            visit(child, [*parents, child], func)

    visit(root, [root], False)
    return found


def _cmbnn_file(module):
    """src/ file of a cmbnn module, or None when the name is not a module."""
    rel = Path(*module.split("."))
    for candidate in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


@cache
def _module(name):
    """A cmbnn module: (its package, its top-level defs by name, names it imports from cmbnn at module level)."""
    path = _cmbnn_file(name)
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return tree, package, defs


def third_party_imports(script):
    """Top-level third-party import name -> how the script reaches it (for the error message).

    The library imports heavy packages inside functions, so for cmbnn only what the script uses counts:
    a module's module-level imports, and the imports inside the functions it takes from it (and inside
    the cmbnn functions those call, followed by name).
    """
    found, seen = {}, set()
    # (kind, module, names, via); kind: "import" (names used), "load" (names only bound), "module", "symbol"
    todo = []

    def add_imports(imports, via, kind="import"):
        for module, names in imports:
            todo.append((kind, module, tuple(names), via))

    add_imports(_import_nodes(ast.parse(script.read_text()), None, False), script.name)
    add_imports(_import_nodes(ast.parse((SCRIPTS / "_helpers.py").read_text()), None, False), "_helpers.py")
    while todo:
        kind, module, names, via = todo.pop()
        if (kind, module, names) in seen:
            continue
        seen.add((kind, module, names))
        top = module.split(".")[0]
        if kind in ("import", "load"):
            if top != "cmbnn":
                if top not in sys.stdlib_module_names and top not in PROVIDED:
                    found.setdefault(top, via)
                continue
            # Importing cmbnn.a.b runs each package's __init__ and the module itself.
            parts = module.split(".")
            for k in range(1, len(parts) + 1):
                if _cmbnn_file(".".join(parts[:k])):
                    todo.append(("module", ".".join(parts[:k]), (), via))
            for name in names:
                if _cmbnn_file(f"{module}.{name}"):  # a submodule: all of it may be used
                    sub = f"{module}.{name}"
                    todo.append(("module", sub, (), via))
                    todo += [("symbol", sub, (d,), f"{via} -> {sub}") for d in _module(sub)[2]]
                elif _cmbnn_file(module) and kind == "import":
                    # A module-level import ("load") binds the name; only a use runs the function.
                    todo.append(("symbol", module, (name,), via))
        elif kind == "module":
            tree, package, _ = _module(module)
            add_imports(_import_nodes(tree, package, True), f"{via} -> {module}", kind="load")
        else:
            tree, package, defs = _module(module)
            node = defs.get(names[0])
            if node is None:
                continue  # a constant or an import re-exported: covered by the module-level imports
            here = f"{via} -> {module}.{names[0]}"
            add_imports(_import_nodes(node, package, False), here)
            # cmbnn functions it calls by name: defined in this module, or imported into it.
            imported = {}
            for stmt in tree.body:
                if isinstance(stmt, ast.ImportFrom):
                    base = stmt.module if stmt.level == 0 else (
                        f"{package}.{stmt.module}" if stmt.module else package)
                    for alias in stmt.names:
                        imported[alias.asname or alias.name] = (base, alias.name)
            for ref in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
                if ref in defs and ref != names[0]:
                    todo.append(("symbol", module, (ref,), here))
                elif ref in imported and imported[ref][0] and imported[ref][0].split(".")[0] == "cmbnn":
                    todo.append(("import", imported[ref][0], (imported[ref][1],), here))
    return found


def env_packages(env_file):
    """conda package -> pinned version ('' when unpinned) of an env file."""
    spec = yaml.safe_load(env_file.read_text())
    packages = {}
    for dep in spec.get("dependencies", []):
        if isinstance(dep, str):
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==?|>=|<=|~=)?\s*(.*)$", dep.split("::")[-1])
            packages[m.group(1).lower()] = m.group(2).strip()
    return packages


def lock_versions():
    versions = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip().lower().replace("-", "_")] = version.strip()
    return versions


SCRIPT_RULES = sorted(name for name, block in rule_blocks().items() if "script" in block)
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def test_rules_are_found():
    assert {"cut_patches", "train_cenn", "spectra"} <= set(SCRIPT_RULES)


@pytest.mark.parametrize("rule", SCRIPT_RULES)
def test_rule_env_provides_the_script_imports(rule):
    block = rule_blocks()[rule]
    assert "conda" in block, f"rule {rule} ({block['file'].name}) runs a script but names no conda env"
    env, script = _path_of(block, "conda"), _path_of(block, "script")
    assert env.exists(), f"rule {rule}: conda env {env} does not exist"
    assert script.exists(), f"rule {rule}: script {script} does not exist"
    packages = env_packages(env)
    unknown = {imp: via for imp, via in third_party_imports(script).items() if imp not in IMPORT_TO_CONDA}
    assert not unknown, f"rule {rule}: add the conda package of {unknown} to IMPORT_TO_CONDA in tests/test_envs.py"
    missing = {
        IMPORT_TO_CONDA[imp]: via for imp, via in third_party_imports(script).items() if IMPORT_TO_CONDA[imp] not in packages
    }
    assert not missing, f"rule {rule}: envs/{env.name} lacks {sorted(missing)} (imported via {missing})"


def test_the_import_scan_follows_helpers_and_cmbnn():
    """train_cenn reaches keras only through cmbnn.nn.training; cut_patches reaches yaml through cmbnn.config."""
    assert "keras" in third_party_imports(SCRIPTS / "train_cenn.py")
    assert "numpy" in third_party_imports(SCRIPTS / "cut_patches.py")
    assert "keras" not in third_party_imports(SCRIPTS / "cut_patches.py")


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_follow_the_lock(env_file):
    """Every package is pinned; where requirements.lock has it, to the lock's major.minor."""
    lock = lock_versions()
    packages = env_packages(env_file)
    assert packages.get("python") in ("3.11", "3.12"), f"{env_file.name}: pin python to 3.11 or 3.12 (setup.sh's range)"
    for name, pin in packages.items():
        assert pin, f"{env_file.name}: {name} is not pinned"
        if name in ("python", "pip") or name in PIN_EXCEPTIONS:
            continue
        locked = lock.get(CONDA_TO_PYPI.get(name, name).lower().replace("-", "_"))
        if locked is None:
            continue
        major_minor = ".".join(locked.split(".")[:2])
        assert pin == major_minor or pin.startswith(f"{major_minor}."), (
            f"{env_file.name}: {name}={pin} but requirements.lock has {locked}: pin {major_minor}"
        )
