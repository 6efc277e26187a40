#!/usr/bin/env bash
# The README's table of Yosys resources and longest path per shipped config:
#   scripts/estimate-table.sh [CONFIG.toml...]      (default: every configs/*.toml)
# Runs `coforge estimate --family xcup` (UltraScale+, the family of both default Vivado parts)
# on each config into out/estimate/<config>/ and prints one Markdown row per top, built from
# resources.csv. Yosys estimates, not Vivado results. Set FAMILY=xc7 for 7-series, and COFORGE
# to a coforge binary to use it instead of building target/release/coforge.
set -euo pipefail
cd "$(dirname "$0")/.."
family=${FAMILY:-xcup}
if [ -z "${COFORGE:-}" ]; then
  cargo build --quiet --release -p coforge-cli
  COFORGE=target/release/coforge
fi
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
  configs=(configs/*.toml)
fi
echo "| config | top | LUTs | flip-flops | DSPs | block RAMs | carries | longest path (cells) |"
echo "|---|---|---|---|---|---|---|---|"
for config in "${configs[@]}"; do
  name=$(basename "$config" .toml)
  out="out/estimate/$name"
  "$COFORGE" estimate --config "$config" --family "$family" --out "$out" >/dev/null
  awk -F, -v config="$name" '
    NR == 1 { next }
    !($1 in seen) { seen[$1] = 1; order[++n] = $1 }
    $2 ~ /^LUT/   { luts[$1] += $3 }
    $2 ~ /^FD/    { ffs[$1] += $3 }
    $2 ~ /^DSP48/ { dsps[$1] += $3 }
    $2 ~ /^RAMB/  { brams[$1] += $3 }
    $2 ~ /^CARRY/ { carries[$1] += $3 }
    $2 == "longest_path" { path[$1] = $3 }
    END {
      for (i = 1; i <= n; i++) {
        t = order[i]
        printf "| %s | `%s` | %d | %d | %d | %d | %d | %d |\n", config, t, luts[t], ffs[t],
          dsps[t], brams[t], carries[t], path[t]
      }
    }' "$out/resources.csv"
done
