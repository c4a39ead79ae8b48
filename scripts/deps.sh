#!/bin/sh
# Installs what qpeach needs from Debian's packages, only when missing.
# Does nothing (and needs no root) when everything is present.
# Arguments add what optional targets need: `fuzz` (clang + its libFuzzer
# runtime), `valgrind`. With --check first, checks only what those need and
# installs nothing: names what is missing and exits 1, or exits 0.
set -u
check=""
[ "${1:-}" = "--check" ] && { check=y; shift; }
need=""
extras() {   # what the optional targets named in the arguments need
    for extra in "$@"; do
        case $extra in
        fuzz) command -v clang >/dev/null 2>&1 || need="$need clang"
              ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
                  need="$need libclang-rt-14-dev" ;;
        valgrind) command -v valgrind >/dev/null 2>&1 || need="$need valgrind" ;;
        esac
    done
}
if [ -n "$check" ]; then
    extras "$@"
    [ -z "$need" ] && exit 0
    echo "deps: missing:$need" >&2
    exit 1
fi
for pair in hwloc:libhwloc-dev msgpack:libmsgpack-dev openssl:libssl-dev \
            cunit:libcunit1-dev inih:libinih-dev python3-embed:python3-dev zlib:zlib1g-dev; do
    pc=${pair%%:*}; pkg=${pair#*:}
    pkg-config --exists "$pc" 2>/dev/null || need="$need $pkg"
done
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v cc >/dev/null 2>&1 || need="$need build-essential"
for pair in numpy:python3-numpy pandas:python3-pandas dill:python3-dill \
            msgpack:python3-msgpack dask:python3-dask matplotlib:python3-matplotlib \
            setuptools:python3-setuptools wheel:python3-wheel ensurepip:python3-venv \
            pip:python3-pip; do   # the last four: `pip install ./python` offline
    mod=${pair%%:*}; pkg=${pair#*:}
    /usr/bin/python3 -c "import $mod" 2>/dev/null || need="$need $pkg"
done
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v ip >/dev/null 2>&1 || need="$need iproute2"        # network-namespace test peers
command -v strace >/dev/null 2>&1 || need="$need strace"      # kills a db import at each commit step
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"   # checks deploy/'s unit
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
extras "$@"
[ -z "$need" ] && exit 0
echo "deps: installing$need"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq $need >/dev/null || {
    echo "deps: apt-get install$need failed" >&2; exit 1; }
