#!/usr/bin/env bash
# build.sh — configure (once) and build b2bua in the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure -q "$@"
make -j"$(nproc)" >/dev/null
