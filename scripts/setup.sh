#!/usr/bin/env bash
# Installs what coforge needs on a fresh Debian machine: Verilator (5.006 or newer), Icarus
# Verilog and Yosys, from Debian's packages. Idempotent: installs only what is missing.
set -euo pipefail

need=()
command -v verilator >/dev/null 2>&1 || need+=(verilator)
command -v iverilog >/dev/null 2>&1 || need+=(iverilog)
command -v yosys >/dev/null 2>&1 || need+=(yosys)

if ((${#need[@]})); then
  echo "setup: installing ${need[*]} from Debian's packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "setup: need root (or sudo) to run apt-get install ${need[*]}" >&2
      exit 1
    fi
  fi
  if ! $sudo apt-get update -qq; then
    echo "setup: apt-get update failed; check the network or the apt sources, then retry" >&2
    exit 1
  fi
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null; then
    echo "setup: apt-get install ${need[*]} failed; install them by hand and retry" >&2
    exit 1
  fi
fi

# Verilator 5.006 (Debian 12) is the floor: the co-simulation shim uses its VerilatedContext API.
version=$(verilator --version | awk '{print $2}')
major=${version%%.*}
minor=$((10#${version#*.}))
if ((major < 5 || (major == 5 && minor < 6))); then
  echo "setup: Verilator $version is older than 5.006; install 5.006 or newer (Debian 12's package)" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (rustup) and retry" >&2
  exit 1
fi
echo "setup: Verilator $version, $(iverilog -V 2>/dev/null | head -n1 | cut -d' ' -f1-4), $(yosys -V | cut -d' ' -f1-2), $(cargo --version | cut -d' ' -f1-2)"
