#!/usr/bin/env bash
# The whole test suite, from a fresh machine: tools, formatting, lints, then every test
# (unit, property, CLI, co-simulation with Verilator and Icarus, lint and Yosys checks), then the
# regression baselines of the shipped configs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The rust-hdl leaves (leaves/, behind the cargo feature `rust-hdl`): lints, then the repair's unit
# tests and the leaf's lint, Yosys and co-simulation tests. Compiling rust-hdl is most of the time.
cargo clippy -p coforge-leaves --features rust-hdl --all-targets --quiet -- -D warnings
cargo test -p coforge-leaves --features rust-hdl
# Cycles of every shipped config against baselines/, and the Yosys figures of the configs that
# synthesize in seconds. stce-16x16-2of8 takes about 4 minutes of Yosys, and the fp16 training
# engine (fp32 adders in every PE) several minutes per top: their Yosys figures are recorded in
# baselines/ but checked only by hand (`coforge baseline check --baseline baselines`).
cargo run -p coforge-cli --quiet -- baseline check --baseline baselines \
    --skip-yosys stce-16x16-2of8 --skip-yosys fp16-4x4-2of8
