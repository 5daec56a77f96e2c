#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer harnesses with clang in build-fuzz and
# runs each for FUZZ_SECONDS (default 600: ten minutes each, one process, so
# about ten CPU-minutes; the session and HTTP harnesses also use the store's
# threads). FUZZERS="session http" picks some. See fuzz/README.md.
#
# Corpora: the committed seeds are fuzz/corpus/<harness>/ (read, never
# written); what a run learns goes to build-fuzz/corpus/<harness>/ and is
# kept between runs. A crash, leak or timeout is written to
# fuzz/corpus/<harness>/crash-... (or leak-, timeout-): the replay test of
# `make test` fails on it until it is fixed, and it is committed with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZERS=${FUZZERS:-"parsers bus_codec sdk_frames session http"}
JOBS=${JOBS:-$(nproc)}

command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 missing (scripts/bootstrap)"; exit 1; }
if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$FUZZ_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_CXX_FLAGS_FUZZ="-O1 -gline-tables-only" \
    -DPARLEY_FUZZ=ON -DPARLEY_WERROR=OFF
fi
targets=()
for f in $FUZZERS; do targets+=("fuzz_$f"); done
cmake --build "$FUZZ_DIR" -j"$JOBS" --target "${targets[@]}"

status=0
for f in $FUZZERS; do
  work="$FUZZ_DIR/corpus/$f"
  mkdir -p "$work"
  echo "== fuzz_$f: ${FUZZ_SECONDS}s"
  # -timeout: one input taking longer is a hang. -rss_limit_mb: the store's
  # caches included.
  if ! "$FUZZ_DIR/fuzz/fuzz_$f" -max_total_time="$FUZZ_SECONDS" -timeout=60 \
      -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="fuzz/corpus/$f/" \
      "$work" "fuzz/corpus/$f" 2>"$FUZZ_DIR/fuzz_$f.log"; then
    echo "fuzz_$f FAILED: see $FUZZ_DIR/fuzz_$f.log and fuzz/corpus/$f/"
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^Done " "$FUZZ_DIR/fuzz_$f.log" || true
done
exit $status
