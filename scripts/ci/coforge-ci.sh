#!/usr/bin/env bash
# coforge in a user's CI: verify each config bit for bit with a JUnit report, and when a config
# fails, run it again with a VCD window that ends at the first mismatch, for the artifacts.
# Both scripts/ci/github-workflow.yml and scripts/ci/gitlab-ci.yml call this script, so what CI
# does can be run by hand with the same command.
#
#   scripts/ci/coforge-ci.sh OUT CONFIG.toml [CONFIG.toml ...]
#
# Writes, per config NAME: OUT/NAME/ (report.json, tensors, and on a mismatch mismatch.svg and
# waves.vcd) and OUT/junit/NAME.xml.
# Environment:
#   COFORGE              the coforge binary (default: coforge on PATH)
#   COFORGE_VERIFY_ARGS  extra arguments for every `coforge verify` (e.g. "--seed 3 --shape 32x64x32")
#   COFORGE_WAVES_BEFORE cycles of waves before the first mismatch (default 200)
# Exit code: the highest of the runs' codes: 0 all bit-exact, 1 a mismatch or bad input,
# 2 a usage error, 3 a missing tool (a broken machine, not a broken design).
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 OUT CONFIG.toml [CONFIG.toml ...]" >&2
    exit 2
fi
coforge=${COFORGE:-coforge}
before=${COFORGE_WAVES_BEFORE:-200}
out=$1
shift
# Word splitting of the extra arguments is intended.
read -r -a extra <<< "${COFORGE_VERIFY_ARGS:-}"

status=0
for config in "$@"; do
    name=$(basename "$config" .toml)
    args=(verify --config "$config" --out "$out/$name" --junit "$out/junit/$name.xml" "${extra[@]}")
    "$coforge" "${args[@]}"
    rc=$?
    if [ "$rc" -eq 1 ] && [ -f "$out/$name/report.json" ]; then
        # The cycle at which the first differing element was read out (report.json's
        # first_mismatch.cycle); the same seeded run again, with waves up to that cycle.
        cycle=$(sed -n 's/.*"cycle": *\([0-9][0-9]*\).*/\1/p' "$out/$name/report.json" | head -n 1)
        if [ -n "$cycle" ]; then
            first=$((cycle > before ? cycle - before : 0))
            echo "coforge-ci: $name failed; dumping waves of cycles $first:$cycle" >&2
            "$coforge" "${args[@]}" --waves "$first:$cycle"
        fi
    fi
    if [ "$rc" -gt "$status" ]; then
        status=$rc
    fi
done
exit "$status"
