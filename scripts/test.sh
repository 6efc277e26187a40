#!/usr/bin/env bash
# The whole test suite, from a fresh machine: tools, formatting, lints, then every test
# (unit, property, CLI, co-simulation with Verilator and Icarus, lint and Yosys checks).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
