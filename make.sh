#!/bin/sh
# make.sh run|test — the README's two commands on a fresh Debian 12 machine.
# Installs what is missing (apt-get, as root or through sudo), then runs `make run` or
# `make test` (see Makefile).
set -eu
cd "$(dirname "$0")"
case "${1:-}" in
    run|test) ;;
    *) echo "usage: ./make.sh run|test" >&2; exit 2 ;;
esac
./scripts/install-deps
exec make "$1"
