#!/usr/bin/env bash
# The main job on the shipped default configuration (configs/default.toml), from a fresh
# machine: install the tools, build coforge, generate the engine's Verilog, verify a GEMM on it
# bit for bit in Verilator co-simulation, and compute the golden tensors of one 2:8 BDWP step.
# Everything lands in out/default/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet --release -p coforge-cli
coforge=target/release/coforge
out=out/default
vectors=testbenches/vectors

echo "== generate: configs/default.toml -> $out/rtl"
$coforge gen --config configs/default.toml --out "$out/rtl"

echo "== vivado: Vivado build and IP-packaging scripts (VCU1525 part, 200 MHz) -> $out/vivado"
$coforge vivado --config configs/default.toml --clock-mhz 200 --out "$out/vivado"

echo "== verify: a 2:8 GEMM on the engine, bit for bit against the reference -> $out/verify"
$coforge verify --config configs/default.toml --out "$out/verify" --seed 1 --shape 16x64x16

echo "== golden: prune the shipped weights 2:8 along Cin -> $out/prune"
$coforge golden prune --weights "$vectors/demo_w32.npy" --n 2 --m 8 --axis 1 --out "$out/prune"

echo "== golden: one BDWP training step (2:8, lr 0.01) -> $out/train-step"
$coforge golden train-step --x "$vectors/demo_x.npy" --w "$vectors/demo_w32.npy" \
  --dy "$vectors/demo_dy.npy" --n 2 --m 8 --lr 0.01 --out "$out/train-step"

echo "== train: 3 BDWP steps (2:8) on the RTL training engine, bit for bit -> $out/train"
$coforge train --config configs/fp16-4x4-2of8.toml --x "$vectors/demo_x.npy" --w "$vectors/demo_w32.npy" \
  --dy "$vectors/demo_dy.npy" --n 2 --m 8 --lr 0.01 --steps 3 --out "$out/train"

echo "== generate: the CoDeNet deformable-convolution engine (configs/deform-codenet.toml) -> $out/deform-rtl"
$coforge gen --config configs/deform-codenet.toml --out "$out/deform-rtl"

echo "== verify: a seeded 16x16x10 layer with per-pixel dilations in [1, 3], bit for bit -> $out/deform-verify"
$coforge verify --config configs/deform-codenet.toml --out "$out/deform-verify" --seed 1 --shape 16x16x10
