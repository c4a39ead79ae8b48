#!/bin/sh
# Builds the libFuzzer targets (clang, ASan + UBSan) into build/fuzz/, seeds
# their corpora from the unit tests' known messages, the example jobs and a
# few CSV files, runs each for SECONDS and prints executions and findings
# per target. Exits non-zero on any finding.
# Usage: sh scripts/fuzz.sh [SECONDS] [TARGET...]
#   targets: fuzz_decode fuzz_decompress fuzz_server fuzz_jobfile fuzz_csv fuzz_kdbfile
set -eu
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"fuzz_decode fuzz_decompress fuzz_server fuzz_jobfile fuzz_csv fuzz_kdbfile"}
out=build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$out"
codec="src/core/value.c src/core/sym.c src/core/ipc.c src/core/ipc_decode.c src/core/compress.c src/core/reader.c"
core=$(ls src/core/*.c)
flags="-std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc/core -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
for t in $targets; do
    case $t in
    fuzz_decode|fuzz_decompress) src=$codec; libs="-lm" ;;
    fuzz_server) src="$core $(ls src/net/*.c)"; libs="$(pkg-config --libs openssl) -lm" ;;
    fuzz_jobfile) src="src/core/value.c src/core/sym.c src/sched/job.c"; libs="$(pkg-config --libs inih) -lm" ;;
    fuzz_csv) src=$core; libs="-lm" ;;
    fuzz_kdbfile) src="$codec src/core/kdbfile.c src/core/kdbnest.c src/core/kdbzip.c"; libs="$(pkg-config --libs zlib) -lm" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
    esac
    echo "== building $out/$t"
    # shellcheck disable=SC2086
    $CC $flags $(pkg-config --cflags openssl inih) $src "tests/fuzz/$t.c" -o "$out/$t" $libs
done

# ---- seed corpora ----
$CC -std=c11 -O1 tests/fuzz/seeds.c -o "$out/seeds"
for t in decode decompress server jobfile csv kdbfile; do mkdir -p "$out/corpus_$t"; done
mkdir -p "$out/findings"
"$out/seeds" "$out/corpus_decode" "$out/corpus_decompress"
# server: byte 0 odd = log in first, then the codec's messages, and calls
for f in "$out"/corpus_decode/*; do
    { printf '\001'; cat "$f"; } >"$out/corpus_server/msg_$(basename "$f")"
done
${PYTHON:-/usr/bin/python3} - "$out/corpus_server" <<'PY'
import os, struct, sys
d = sys.argv[1]
def m(body, t=1):
    return struct.pack("<BBBBI", 1, t, 0, 0, 8 + len(body)) + body
def cv(s):
    return b"\x0a\x00" + struct.pack("<i", len(s)) + s.encode()
exprs = [".qp.echo 1 2 3", ".qp.echo[(1;`a;\"x\");0x0a0b]", ".qp.info[]", ".qp.ping[]",
         ".qp.set[`t;(1 2;3.5e)]", ".qp.get `t", ".qp.tables[]", ".qp.count `t",
         ".qp.echo -0Wj 0N 1.5 2", ".qp.echo 0101b", ".qp.meta `t", "t", "1+1",
         ".qp.echo `a`b`c", ".qp.nosuch[1]", ".qp.echo ((1;2);(`a;\"b\\n\"))"]
for i, e in enumerate(exprs):
    open(os.path.join(d, f"expr_{i:02d}"), "wb").write(b"\x01" + m(cv(e)))
call = b"\x00\x00" + struct.pack("<i", 2) + b"\xf5.qp.echo\x00" + b"\xf9" + struct.pack("<q", 42)
open(os.path.join(d, "call_sym"), "wb").write(b"\x01" + m(call) + m(call, 0))
open(os.path.join(d, "hs_only"), "wb").write(b"\x00user:pass\x03\x00" + m(call))
open(os.path.join(d, "hs_old"), "wb").write(b"\x00user\x00" + m(call))
PY
cp jobs/*.ini "$out/corpus_jobfile/" 2>/dev/null || true
printf '[job]\nfunction = f.py:f\n[input]\nfile = a.csv\n[partition]\nby = rows\npieces = 4\n[workers]\nlocal = 2\nuser = @creds\n[merge]\nhow = sum\n[run]\ntask_timeout = 30s\n' >"$out/corpus_jobfile/small.ini"
printf '\000a,b,c\n1,2.5,x\n3,,y\n' >"$out/corpus_csv/plain"
printf '\001sym,price,size,time,date\nIBM,101.5,100,09:30:00.000,2024.01.02\nMSFT,0n,200,09:30:01.5,2024.01.03\n' >"$out/corpus_csv/trade"
printf '\010SFJ\nname,v,n\n"a,b",1.5,7\n"x""y",,8\n' >"$out/corpus_csv/typed"
printf '\004a\tb\n1\t2\n\t\n' >"$out/corpus_csv/tabs"
printf '\003g,p,b,x\n8c680a01-5a49-5aab-5a65-d4bfddb6a661,2024.01.02D10:00:00.123456789,1,0x0a\n,,0,\n' >"$out/corpus_csv/types"
# kdbfile: the fixture dbs' files (never copied into the repository), each
# as uint32 length + file + its name# companion when it has one.
${PYTHON:-/usr/bin/python3} - "$out/corpus_kdbfile" "${QPEACH_FIXTURES:-../shared/fixtures/kdb}" <<'PY'
import os, struct, sys
d, fix = sys.argv[1], sys.argv[2]
k = 0
for root, _, files in os.walk(fix):
    for name in sorted(files):
        p = os.path.join(root, name)
        if name.endswith("#") or name.endswith(".csv") or os.path.getsize(p) > 65536:
            continue
        body = open(p, "rb").read()
        comp = open(p + "#", "rb").read()[:65536] if os.path.exists(p + "#") else b""
        open(os.path.join(d, f"f{k:04d}"), "wb").write(struct.pack("<I", len(body)) + body + comp)
        k += 1
PY

# ---- runs ----
status=0
for t in $targets; do
    corpus=$out/corpus_${t#fuzz_}
    log=$out/$t.log
    echo "== running $t for ${secs}s (corpus $corpus)"
    before=$(ls "$out/findings" | wc -l)
    "$out/$t" "$corpus" -max_total_time="$secs" -print_final_stats=1 -timeout=20 \
        -rss_limit_mb=2048 -artifact_prefix="$out/findings/$t-" >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(( $(ls "$out/findings" | wc -l) - before ))
    echo "$t: ${execs:-?} executions, $found findings, corpus $(ls "$corpus" | wc -l) inputs"
    if [ "$found" -ne 0 ]; then
        status=1
        ls -t "$out/findings" | head -n "$found" | sed 's/^/  finding: /'
        grep -m5 -E 'ERROR|SUMMARY|fuzz_' "$log" || true
    fi
done
exit $status
