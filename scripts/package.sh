#!/usr/bin/env bash
# Builds the Debian package postgresql-15-segments with PostgreSQL's Debian
# tooling (debian/, pg_buildext), on Debian 12, as root:
#   ./scripts/package.sh [OUTDIR]        (default: dist/)
# Installs the build dependencies with apt-get if missing, builds from a copy
# of the working tree (the files git knows, or would: committed, changed or
# new but not ignored), so the tree itself stays clean, and leaves the .deb
# files in OUTDIR.  Install with: apt-get install ./dist/postgresql-15-segments_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

out="${1:-dist}"
PACKAGES="build-essential dpkg-dev debhelper postgresql-server-dev-all" ensure_packages

work=$(mktemp -d /tmp/segments-package-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/segments"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/segments"
else
    cp -a . "$work/segments"
fi

log "dpkg-buildpackage"
if ! (cd "$work/segments" && dpkg-buildpackage --build=binary --no-sign) >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log"
    echo "package build failed" >&2
    exit 1
fi
mkdir -p "$out"
cp "$work"/*.deb "$out"/
log "built:"
ls -1 "$out"/*.deb
