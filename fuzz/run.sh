#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS (default 60) on its corpus; exits non-zero on a finding.
# Needs clang (Debian's clang and libclang-rt-14-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
if [ ! -d build-fuzz ]; then
  CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-fuzz >/dev/null
status=0
for t in model_file checkpoint torch7 picture; do
  work=$(mktemp -d)
  log=$(mktemp)
  # New inputs go to a scratch folder so that the committed corpus stays small.
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-fuzz/fuzz/fuzz_$t -max_total_time="$secs" \
      -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix=fuzz/ \
      "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    echo "fuzz_$t: ${secs}s, $runs runs, peak RSS ${rss} MB, no finding"
  else
    echo "fuzz_$t: FINDING"
    grep -E "ERROR|SUMMARY|runtime error|#[0-9]+ 0x" "$log" | head -30
    status=1
  fi
  rm -rf "$work" "$log"
done
exit $status
