#!/bin/sh
# Builds the libFuzzer targets (clang, ASan + UBSan) into build/fuzz/, seeds
# their corpora from the unit tests' known messages, runs each for SECONDS
# and prints executions and findings. Exits non-zero on any finding.
# Usage: sh scripts/fuzz.sh [SECONDS]
set -eu
secs=${1:-60}
out=build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$out"
src="src/core/value.c src/core/sym.c src/core/ipc.c src/core/ipc_decode.c src/core/compress.c src/core/reader.c"
flags="-std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc/core -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
for t in fuzz_decode fuzz_decompress; do
    echo "== building $out/$t"
    $CC $flags $src "tests/fuzz/$t.c" -o "$out/$t" -lm
done
$CC -std=c11 -O1 tests/fuzz/seeds.c -o "$out/seeds"
mkdir -p "$out/corpus_decode" "$out/corpus_decompress" "$out/findings"
"$out/seeds" "$out/corpus_decode" "$out/corpus_decompress"

status=0
for t in fuzz_decode fuzz_decompress; do
    corpus=$out/corpus_${t#fuzz_}
    log=$out/$t.log
    echo "== running $t for ${secs}s (corpus $corpus)"
    before=$(ls "$out/findings" | wc -l)
    "$out/$t" "$corpus" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/findings/$t-" >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(( $(ls "$out/findings" | wc -l) - before ))
    echo "$t: ${execs:-?} executions, $found findings, corpus $(ls "$corpus" | wc -l) inputs"
    if [ "$found" -ne 0 ]; then
        status=1
        ls "$out/findings" | sed 's/^/  finding: /'
        grep -m5 -E 'ERROR|SUMMARY' "$log" || true
    fi
done
exit $status
