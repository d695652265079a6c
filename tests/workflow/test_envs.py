"""The conda envs (envs/*.yaml) used by `--sdm conda`: each rule's env provides what its script imports,
and the pins follow requirements.lock (the versions the tests run with) except for the differences
listed in ALLOWED_DIFFERENCES, each with its reason (docs/environments.md gives the evidence).

Rules are found by parsing rules/*.smk, so rules added later are checked too. A script's imports are
its own (anywhere in the file), those of the local `_helpers` module, and those of the cmbnn code it
uses, followed transitively (see third_party_imports). An import guarded by `except ImportError` is optional.

No conda channel is reachable from the test machine, so nothing here solves an env: the tables below
record what the conda-forge feedstocks showed (see docs/environments.md for how to run a real solve).
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
    "astropy": "astropy-base",
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
    "pywph": "pywph",
}
# Snakemake's script preamble puts its own package on sys.path; _helpers puts src/ (cmbnn) there.
# jax and torch are the other Keras backends: cmbnn.nn.training imports them only when KERAS_BACKEND names them.
PROVIDED = {"snakemake", "_helpers", "cmbnn", "jax", "torch"}

# conda-forge name -> requirements.lock name, where they differ. pymaster is not in the lock: setup.sh
# builds it from its sdist (PYMASTER_VERSION), and that version is the reference for namaster.
CONDA_TO_PYPI = {
    "matplotlib-base": "matplotlib",
    "astropy-base": "astropy",
    "pyyaml": "PyYAML",
    "tensorflow": "tensorflow_cpu",
    "namaster": "pymaster",
}
# conda-forge package -> (its pin in every env, why it differs from the reference's major.minor).
# A pin that differs and is not listed fails; so does an entry that no longer differs or is pinned nowhere.
ALLOWED_DIFFERENCES = {
    "healpy": ("1.19", "conda-forge's newest is 1.19.0 (healpy-feedstock); the lock has 1.20.1 from PyPI"),
    "ducc0": ("0.41", "conda-forge's newest is 0.41.0 (ducc0-feedstock); the lock has 0.42.0 from PyPI"),
    "camb": ("1.6", "conda-forge's newest is 1.6.5 (camb-feedstock); the lock has 2.0.5 from PyPI"),
    "pandas": ("3.0", "conda-forge's newest is 3.0.3 (pandas-feedstock); the lock has 3.1.1 from PyPI"),
    "pillow": ("12.2", "conda-forge's newest is 12.2.0 (anaconda.org file list); the lock has 13.0.0 from PyPI"),
    "urllib3": ("2.7", "conda-forge's newest is 2.7.0 (anaconda.org file list); the lock has 2.8.0 from PyPI"),
    "tensorflow": ("2.19", "conda-forge's newest is 2.19.1 (tensorflow-feedstock); the lock has tensorflow-cpu 2.21.0"),
    "tensorboard": ("2.19", "conda-forge's tensorflow 2.19 requires tensorboard >=2.19,<2.20; the lock has 2.21.0"),
    "namaster": ("2.7", "conda-forge's newest, built on cfitsio 4.6.3 like healpy 1.19.0; setup.sh builds pymaster 3.0.1"),
}
# conda-forge names that must not be used, and what to use instead.
FORBIDDEN = {
    "astropy": "conda-forge's astropy is a metapackage that adds ipython, dask, pyarrow, s3fs, ...: use astropy-base",
}
# cfitsio run_exports pin the exact patch version, so packages linking cfitsio share an env only where
# their builds agree. (package, pin) -> cfitsio versions its conda-forge builds were made against
# (the feedstock's .ci_support/linux_64_python3.11*.yaml at each build; docs/environments.md).
CFITSIO_BUILDS = {
    ("healpy", "1.19"): {"4.6.3"},
    ("namaster", "2.7"): {"4.6.3"},
    ("namaster", "2.4"): {"4.5.0", "4.6.2"},  # the former pin: no build shares a cfitsio with healpy 1.19
}
CFITSIO_USERS = {"healpy", "namaster", "fitsio"}


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
                    base = stmt.module if stmt.level == 0 else (f"{package}.{stmt.module}" if stmt.module else package)
                    for alias in stmt.names:
                        imported[alias.asname or alias.name] = (base, alias.name)
            for ref in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
                if ref in defs and ref != names[0]:
                    todo.append(("symbol", module, (ref,), here))
                elif ref in imported and imported[ref][0] and imported[ref][0].split(".")[0] == "cmbnn":
                    todo.append(("import", imported[ref][0], (imported[ref][1],), here))
    return found


def env_packages(env_file):
    """conda package -> pinned version ('' when unpinned) of an env file; the packages of its pip:
    section (those conda-forge does not carry) count too, under their PyPI names."""
    spec = yaml.safe_load(env_file.read_text())
    packages = {}
    for dep in spec.get("dependencies", []):
        for item in dep.get("pip", []) if isinstance(dep, dict) else [dep]:
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==?|>=|<=|~=)?\s*(.*)$", item.split("::")[-1])
            packages[m.group(1).lower()] = m.group(2).strip()
    return packages


def _key(name):
    return name.strip().lower().replace("-", "_")


def lock_versions():
    """PyPI name (normalised) -> version the tests run with: requirements.lock, plus setup.sh's pymaster."""
    versions = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[_key(name)] = version.strip()
    m = re.search(r"^PYMASTER_VERSION=(\S+)$", (ROOT / "setup.sh").read_text(), re.MULTILINE)
    assert m, "setup.sh: PYMASTER_VERSION=... not found"
    versions.setdefault("pymaster", m.group(1))
    return versions


def reference_version(conda_name, lock):
    """The version the tests run with for a conda package, or None when neither the lock nor setup.sh has it."""
    return lock.get(_key(CONDA_TO_PYPI.get(conda_name, conda_name)))


def follows(pin, version):
    """True when a conda pin (major.minor, or finer) agrees with a version's major.minor."""
    major_minor = ".".join(version.split(".")[:2])
    return pin == major_minor or pin.startswith(f"{major_minor}.")


def common_cfitsio(packages):
    """cfitsio versions that the conda-forge builds of all (package, pin) pairs were made against."""
    sets = [CFITSIO_BUILDS[p] for p in packages]
    return set.intersection(*sets) if sets else set()


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
    """Every package is pinned; to the lock's major.minor, or to the pin ALLOWED_DIFFERENCES lists for it."""
    lock = lock_versions()
    packages = env_packages(env_file)
    assert packages.get("python") in ("3.11", "3.12"), f"{env_file.name}: pin python to 3.11 or 3.12 (setup.sh's range)"
    for name, pin in packages.items():
        assert pin, f"{env_file.name}: {name} is not pinned"
        assert name not in FORBIDDEN, f"{env_file.name}: {name}: {FORBIDDEN.get(name)}"
        if name in ("python", "pip"):
            continue
        locked = reference_version(name, lock)
        if name in ALLOWED_DIFFERENCES:
            allowed, reason = ALLOWED_DIFFERENCES[name]
            assert pin == allowed, (
                f"{env_file.name}: {name}={pin}, but ALLOWED_DIFFERENCES allows only {name}={allowed} ({reason}); "
                "change the env or the entry (with its evidence in docs/environments.md)"
            )
            continue
        assert locked is not None, (
            f"{env_file.name}: {name}={pin} has no version in requirements.lock (nor setup.sh): map its PyPI name in "
            "CONDA_TO_PYPI, or list it in ALLOWED_DIFFERENCES with the reason"
        )
        assert follows(pin, locked), (
            f"{env_file.name}: {name}={pin} but requirements.lock has {locked}: pin {'.'.join(locked.split('.')[:2])}, "
            "or, where conda-forge has no such release, list it in ALLOWED_DIFFERENCES with the reason"
        )


@pytest.mark.parametrize("name", sorted(ALLOWED_DIFFERENCES))
def test_allowed_differences_are_still_true(name):
    """An entry stays only while some env pins the package to it and that pin still differs from the lock."""
    allowed, reason = ALLOWED_DIFFERENCES[name]
    assert reason.strip(), f"ALLOWED_DIFFERENCES[{name!r}] gives no reason"
    pins = {f.name: env_packages(f)[name] for f in ENV_FILES if name in env_packages(f)}
    assert pins, f"no env pins {name}: remove it from ALLOWED_DIFFERENCES"
    assert set(pins.values()) == {allowed}, f"{name}: envs pin {pins}, ALLOWED_DIFFERENCES says {allowed}"
    locked = reference_version(name, lock_versions())
    assert locked is None or not follows(allowed, locked), (
        f"{name}={allowed} now agrees with the lock ({locked}): remove it from ALLOWED_DIFFERENCES"
    )


def test_a_package_is_pinned_alike_in_every_env():
    pins = {}
    for env_file in ENV_FILES:
        for name, pin in env_packages(env_file).items():
            pins.setdefault(name, {})[env_file.name] = pin
    differing = {name: by_env for name, by_env in pins.items() if len(set(by_env.values())) > 1}
    assert not differing, f"packages pinned differently across envs: {differing}"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_cfitsio_users_share_a_cfitsio_build(env_file):
    """healpy and namaster link cfitsio, whose run_exports pin its exact patch version: their builds must agree."""
    packages = env_packages(env_file)
    users = sorted((name, packages[name]) for name in CFITSIO_USERS if name in packages)
    if len(users) < 2:
        return
    unknown = [u for u in users if u not in CFITSIO_BUILDS]
    assert not unknown, (
        f"{env_file.name}: record in CFITSIO_BUILDS the cfitsio that conda-forge built {unknown} against "
        "(the feedstock's .ci_support/linux_64_python3.11*.yaml)"
    )
    assert common_cfitsio(users), (
        f"{env_file.name}: {users} were built against cfitsio {[sorted(CFITSIO_BUILDS[u]) for u in users]}: no common version"
    )


def test_the_cfitsio_check_rejects_the_former_namaster_pin():
    """namaster 2.4 beside healpy 1.19 (the pins before) cannot be solved; the check says so."""
    assert not common_cfitsio([("healpy", "1.19"), ("namaster", "2.4")])
    assert common_cfitsio([("healpy", "1.19"), ("namaster", "2.7")]) == {"4.6.3"}
