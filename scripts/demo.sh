#!/usr/bin/env bash
# The main job on an embedded default: installs what it needs (Debian 12, as
# root), builds and installs segments, starts a throwaway PostgreSQL with
# segments preloaded, loads a few thousand sample contacts, creates segments
# and gated actions, and prints membership, gating and freshness at work.
# KEEP_CLUSTER=1 leaves the cluster's files in place (the server is stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages
build_and_install
start_cluster

createdb demo
log "loading sample contacts and segments"
psql -q -X -d demo -f demo/sample.sql >/dev/null
psql -q -X -d demo -c "SELECT segments.wait('60 s')" >/dev/null
psql -X -d demo -f demo/summary.sql
psql -X -d demo -f demo/freshness.sql
