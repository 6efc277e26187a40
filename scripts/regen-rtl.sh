#!/usr/bin/env bash
# Regenerates rtl-out/<name>/ for every shipped config configs/<name>.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p coforge-cli
for config in configs/*.toml; do
  name=$(basename "$config" .toml)
  rm -rf "rtl-out/$name"
  target/release/coforge gen --config "$config" --out "rtl-out/$name"
done
