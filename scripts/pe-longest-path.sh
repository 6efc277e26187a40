#!/usr/bin/env bash
# The README's longest-path comparison of the PEs: `coforge estimate --family xcup` (through
# scripts/estimate-table.sh) on one-PE engines, so that each STCE top is one PE and its
# read-out: the int8 PE, the fp16 PE (combinational chain of fp32 adders) and the fp16 PE with
# the fp32 adder pipeline (`fp_pipeline = true`), all N:M 2:8. Both fp16 configs also hold a
# one-lane SORE and WUVE, the pipelined one the pipelined WUVE (`wuve_pipeline = true`). Yosys
# estimates, not Vivado results.
#   scripts/pe-longest-path.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pe="[stce]
rows = 1
cols = 1
n = 2
m = 8"
printf '%s\n' "$pe" > "$dir/pe-int8.toml"
printf '%s\ndtype = "fp16"\n[train]\nsore_lanes = 1\nwuve_lanes = 1\n' "$pe" > "$dir/pe-fp16.toml"
printf '%s\ndtype = "fp16"\nfp_pipeline = true\n[train]\nsore_lanes = 1\nwuve_lanes = 1\nwuve_pipeline = true\n' \
  "$pe" > "$dir/pe-fp16-pipe.toml"
scripts/estimate-table.sh "$dir/pe-int8.toml" "$dir/pe-fp16.toml" "$dir/pe-fp16-pipe.toml"
