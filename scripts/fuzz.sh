#!/bin/sh
# Seeds the libFuzzer targets' corpora (from the unit tests' known messages,
# the example jobs, a few CSV files and the fixture dbs) and runs each
# target built by `make fuzz-build` in DIR (build/fuzz), printing one line
# per target: executions and findings. Exits non-zero on any finding, crash
# or missing target.
# Usage: sh scripts/fuzz.sh [--smoke] DIR SECONDS [TARGET...]
#   targets: every DIR/fuzz_* program unless named (fuzz_decode fuzz_server ...)
#   --smoke: start from the seeds only and keep nothing (make check); without
#   it new inputs are kept in DIR/corpus_<name>, so each run goes on from the
#   last one (make fuzz).
set -eu
smoke=""
[ "${1:-}" = "--smoke" ] && { smoke=y; shift; }
out=${1:?usage: fuzz.sh [--smoke] DIR SECONDS [TARGET...]}
secs=${2:?usage: fuzz.sh [--smoke] DIR SECONDS [TARGET...]}
shift 2
targets=${*:-$(cd "$out" && ls fuzz_* 2>/dev/null | grep -v '\.log$' | tr '\n' ' ')}
[ -n "$targets" ] || { echo "fuzz: no fuzz_* programs in $out (make fuzz-build)" >&2; exit 1; }

# ---- seed corpora ----
# seeds_<name> are written afresh each run; corpus_<name> (make fuzz) grows.
rm -rf "$out"/seeds_*
for t in decode decompress server jobfile csv kdbfile; do mkdir -p "$out/seeds_$t"; done
mkdir -p "$out/findings"
"$out/seeds" "$out/seeds_decode" "$out/seeds_decompress"
# server: byte 0 odd = log in first, then the codec's messages, and calls
for f in "$out"/seeds_decode/*; do
    { printf '\001'; cat "$f"; } >"$out/seeds_server/msg_$(basename "$f")"
done
${PYTHON:-/usr/bin/python3} - "$out/seeds_server" <<'PY'
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
cp jobs/*.ini "$out/seeds_jobfile/" 2>/dev/null || true
printf '[job]\nfunction = f.py:f\n[input]\nfile = a.csv\n[partition]\nby = rows\npieces = 4\n[workers]\nlocal = 2\nuser = @creds\n[merge]\nhow = sum\n[run]\ntask_timeout = 30s\n' >"$out/seeds_jobfile/small.ini"
printf '\000a,b,c\n1,2.5,x\n3,,y\n' >"$out/seeds_csv/plain"
printf '\001sym,price,size,time,date\nIBM,101.5,100,09:30:00.000,2024.01.02\nMSFT,0n,200,09:30:01.5,2024.01.03\n' >"$out/seeds_csv/trade"
printf '\010SFJ\nname,v,n\n"a,b",1.5,7\n"x""y",,8\n' >"$out/seeds_csv/typed"
printf '\004a\tb\n1\t2\n\t\n' >"$out/seeds_csv/tabs"
printf '\003g,p,b,x\n8c680a01-5a49-5aab-5a65-d4bfddb6a661,2024.01.02D10:00:00.123456789,1,0x0a\n,,0,\n' >"$out/seeds_csv/types"
# kdbfile: the files of a db our own writer makes (so a lone clone has
# seeds too) and of the q-written fixture dbs when they are beside the clone
# (never copied into the repository), each as uint32 length + file + its
# name# companion when it has one.
own=$(mktemp -d "${TMPDIR:-/tmp}/qpfuzz-db-XXXXXX")
qp=${QPEACH:-build/qpeach}
if [ -x "$qp" ]; then
    printf 'date,sym,side,price,size,note\n2024.01.02,IBM,B,101.5,100,"first, quoted"\n2024.01.02,MSFT,S,0n,200,x\n2024.01.03,IBM,B,102.25,,y\n' >"$own/t.csv"
    printf 'id,name,px,t\n1,a,1.5,09:30:00.000\n2,b,,09:30:01.500\n' >"$own/r.csv"
    "$qp" db import "$own/t.csv" "$own/db" trade --partition date --types DSCFJ* >/dev/null &&
        "$qp" db import "$own/r.csv" "$own/db" ref >/dev/null ||
        echo "fuzz: could not write the seed db with $qp" >&2
fi
${PYTHON:-/usr/bin/python3} - "$out/seeds_kdbfile" "$own/db" "${QPEACH_FIXTURES:-../shared/fixtures/kdb}" <<'PY'
import os, struct, sys
d = sys.argv[1]
k = 0
for top in sys.argv[2:]:
    for root, _, files in os.walk(top):
        for name in sorted(files):
            p = os.path.join(root, name)
            if name.endswith("#") or name.endswith(".csv") or os.path.getsize(p) > 65536:
                continue
            body = open(p, "rb").read()
            comp = open(p + "#", "rb").read()[:65536] if os.path.exists(p + "#") else b""
            open(os.path.join(d, f"f{k:04d}"), "wb").write(struct.pack("<I", len(body)) + body + comp)
            k += 1
PY
rm -rf "$own"

# ---- runs ----
status=0
[ -n "$smoke" ] && echo "== fuzz smoke: each target for ${secs}s from its seeds ($out)"
for t in $targets; do
    name=${t#fuzz_}
    log=$out/$t.log
    mkdir -p "$out/seeds_$name"
    if [ -x "$out/$t" ]; then :; else
        echo "$t: FAILED: $out/$t not built"; status=1; continue
    fi
    if [ -n "$smoke" ]; then
        corpus=$(mktemp -d "${TMPDIR:-/tmp}/qpfuzz-smoke-XXXXXX")
    else
        corpus=$out/corpus_$name
        mkdir -p "$corpus"
        echo "== running $t for ${secs}s (corpus $corpus)"
    fi
    before=$(ls "$out/findings" | wc -l)
    rc=0
    "$out/$t" "$corpus" "$out/seeds_$name" -max_total_time="$secs" -print_final_stats=1 \
        -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$out/findings/$t-" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(( $(ls "$out/findings" | wc -l) - before ))
    if [ -n "$smoke" ]; then
        rm -rf "$corpus"
        size=""
    else
        size=", corpus $(ls "$corpus" | wc -l) inputs"
    fi
    if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ]; then
        echo "$t: ok, ${execs:-?} executions in ${secs}s, 0 findings$size"
        continue
    fi
    status=1
    echo "$t: FAILED (exit $rc), ${execs:-?} executions in ${secs}s, $found findings$size; log $log"
    ls -t "$out/findings" | head -n "$found" | sed "s|^|  finding: $out/findings/|"
    # the sanitizer's or libFuzzer's report: its first line and the stack
    sed -n '/ERROR: /,/^SUMMARY/p' "$log" | grep -E 'ERROR|SUMMARY|^ *#[0-9]+ ' |
        grep -vE 'fuzzer::|libc_start|in _start|in main ' | sed 's/ (BuildId: [0-9a-f]*)//; s/^/  /' | head -12
    [ "$found" -ne 0 ] && echo "  reproduce: $out/$t $out/findings/$(ls -t "$out/findings" | head -1)"
done
exit $status
