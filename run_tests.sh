#!/usr/bin/env bash
# Runs Kumo's whole test suite on this machine, as root: installs the system packages,
# Node 24 and npm dependencies the tests need, starts RabbitMQ and PostgreSQL with the
# test accounts, then type-checks, lints (biome, and dependency-cruiser for the layering)
# and runs every test (unit, integration, fullstack). Extra arguments are passed to
# `node --test` (e.g. a single test file).
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/lib.sh
source tools/lib.sh
kumo_require_root

# The tests also need Chromium (the dashboard's browser tests) and Prometheus with promtool
# (the metrics tests); stack.sh installs neither.
kumo_install_packages chromium prometheus
kumo_install_node
kumo_install_npm_deps
kumo_start_rabbitmq
kumo_rabbit_account kumo-test "${KUMO_TEST_RABBIT_USER:-kumo_test}" "${KUMO_TEST_RABBIT_PASSWORD:-kumo_test_pw}"
kumo_start_postgres
kumo_postgres_account "${KUMO_TEST_PG_USER:-kumo_test}" "${KUMO_TEST_PG_PASSWORD:-kumo_test_pw}"
kumo_postgres_signal "${KUMO_TEST_PG_USER:-kumo_test}"
kumo_start_libvirtd
kumo_start_ovs

log "type-checking"
npx --no-install tsc --noEmit -p .
log "linting"
npx --no-install biome check .
log "checking the layering (ARCHITECTURE §2)"
npx --no-install depcruise --config .dependency-cruiser.cjs bin contracts core host agents api cli test bench tools
log "running tests"
if [ $# -gt 0 ]; then
  exec node --test --test-concurrency=1 "$@"
fi
exec node --test --test-concurrency=1 'test/**/*.test.ts'
