#!/usr/bin/env bash
# One-command set-up for cmbnn on Debian (Python 3.11):
#   ./setup.sh          install system packages (if missing) and the .venv
#   ./setup.sh run ...  set up, then run the default pipeline (extra args go to snakemake)
#   ./setup.sh test ... set up (plus SLURM and munge for the SLURM test), then run the test suite (extra args go to pytest)
# Idempotent: a second call only checks. Needs only the Debian and PyPI registries.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
PYMASTER_VERSION=3.0.1
DEBIAN_PACKAGES=(build-essential pkg-config libgsl-dev libfftw3-dev libcfitsio-dev libchealpix-dev)
# `./setup.sh test` also installs a SLURM for tests/workflow/test_slurm.py (a private single-node cluster,
# started and stopped by the test; the packages' own services are not used).
SLURM_TEST_PACKAGES=(slurmctld slurmd slurm-client munge)
say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

install_system_packages() {
    local missing=()
    # Debian's own Python needs its venv module and headers (pymaster compiles a C extension).
    if [ "$(command -v "$PYTHON" | xargs readlink -f 2>/dev/null)" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ]; then
        DEBIAN_PACKAGES+=(python3-venv python3-dev)
    fi
    command -v dpkg-query >/dev/null || die "not a Debian system (no dpkg-query). Install by hand: GSL, FFTW3 (with OpenMP), CFITSIO and chealpix development files, a C compiler, then rerun."
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else
            die "missing Debian packages: ${missing[*]}. Run as root: apt-get install -y ${missing[*]}"
        fi
    fi
    say "installing Debian packages: ${missing[*]}"
    ${SUDO:-} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq "${missing[@]}" >/dev/null
}

check_python() {
    "$PYTHON" -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13)' 2>/dev/null \
        || die "$PYTHON must be Python 3.11 or 3.12 (set PYTHON=/path/to/python3.11)"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "$PYTHON lacks venv/ensurepip: apt-get install python3-venv"
}

install_python_packages() {
    [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    if ! cmp -s requirements.lock "$VENV/.requirements.lock" 2>/dev/null; then
        say "installing pinned Python packages (requirements.lock)"
        "${pip[@]}" install -q --upgrade pip setuptools wheel
        "${pip[@]}" install -q -r requirements.lock
        cp requirements.lock "$VENV/.requirements.lock"
    fi
    "${pip[@]}" install -q --no-deps -e .
}

# pymaster ships only as an sdist whose build downloads chealpix unless
# _deps/lib/libchealpix.a exists. Debian's static libchealpix is not built
# with -fPIC, so we point that name at Debian's shared library with a
# linker script instead.
install_pymaster() {
    "$VENV/bin/python" -c "import pymaster" 2>/dev/null && return
    local so
    so=$(ls /usr/lib/*/libchealpix.so /usr/lib/libchealpix.so 2>/dev/null | head -1 || true)
    [ -n "$so" ] || die "libchealpix.so not found (apt-get install libchealpix-dev)"
    local build=_build/pymaster
    rm -rf "$build" && mkdir -p "$build"
    say "building pymaster $PYMASTER_VERSION from its sdist against $so"
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary pymaster -d "$build" "pymaster==$PYMASTER_VERSION"
    tar -xzf "$build/pymaster-$PYMASTER_VERSION.tar.gz" -C "$build"
    local src="$build/pymaster-$PYMASTER_VERSION"
    mkdir -p "$src/_deps/lib" "$src/_deps/include"
    printf 'INPUT(%s)\n' "$so" > "$src/_deps/lib/libchealpix.a"
    local build_log="$VENV/pymaster-build.log"
    "$VENV/bin/python" -m pip install --no-build-isolation "$src" > "$build_log" 2>&1 \
        || { tail -n 30 "$build_log" >&2; die "pymaster build failed (full log: $build_log)"; }
    "$VENV/bin/python" -c "import pymaster" || die "pymaster built but does not import (build log: $build_log)"
    rm -rf "$build"
}

# healpy's wheel lacks its pixel-window files and downloads them on first
# use; its sdist carries them. Place them where healpy looks before the network.
install_pixel_windows() {
    local dest
    dest=$("$VENV/bin/python" -c 'import healpy, os; print(os.path.join(os.path.dirname(healpy.__file__), "pixel_window_functions"))')
    [ -f "$dest/pixel_window_n0064.fits" ] && return
    local version build=_build/healpy
    version=$("$VENV/bin/python" -c 'import healpy; print(healpy.__version__)')
    say "placing healpy $version pixel-window files from its sdist into $dest"
    rm -rf "$build" && mkdir -p "$build" "$dest"
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary healpy -d "$build" "healpy==$version"
    tar -xzf "$build/healpy-$version.tar.gz" -C "$build" --wildcards '*/cextern/healpix/data/pixel_window_n*.fits'
    cp "$build"/healpy-"$version"/cextern/healpix/data/pixel_window_n*.fits "$dest/"
    rm -rf "$build"
}

if [ "${1:-}" = test ]; then DEBIAN_PACKAGES+=("${SLURM_TEST_PACKAGES[@]}"); fi
install_system_packages
check_python
install_python_packages
install_pymaster
install_pixel_windows
say "ready: $VENV ($("$VENV/bin/snakemake" --version | head -1) snakemake)"

case "${1:-}" in
    "") ;;
    run) shift; exec "$VENV/bin/snakemake" --cores all "$@" ;;
    test) shift; exec "$VENV/bin/python" -m pytest "$@" ;;
    *) die "unknown command '$1' (use: run, test, or nothing)" ;;
esac
