#!/bin/sh
# make demo: generate 10M trades once (cached under data/), run the VWAP job
# (jobs/vwap.ini) on 2 local pinned workers with a progress bar, print the
# result and where it was written.
set -e
BUILD=${1:-build}
QP="$BUILD/qpeach"
PY=/usr/bin/python3
ROWS=${QPEACH_DEMO_ROWS:-10000000}
cd "$(dirname "$0")/.."

if [ ! -s data/trades.csv ]; then
    echo "== generating $ROWS trades into data/trades.csv (once; cached)"
    $PY scripts/gen_trades.py --rows "$ROWS" --out data/trades.csv
fi

echo "== this machine, and where the workers go"
"$QP" topo --plan 2

# The job needs the embedded Python worker (.qp.def / .qp.apply). Until a
# build has it, show what the worker server already does instead.
sock=$(mktemp -u /tmp/qpeach-demo-XXXXXX.sock)
"$QP" serve -p "unix:$sock" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$sock"' EXIT INT TERM
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if "$QP" call "unix:$sock" '.qp.def[`qp_demo;"def qp_demo():\n    return 1\n"]' >/dev/null 2>&1; then
    kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
    echo "== the plan"
    "$QP" run --dry-run jobs/vwap.ini | sed -n '1,4p;/^plan/,$p'
    echo "== qpeach run jobs/vwap.ini"
    "$QP" run jobs/vwap.ini
    echo "== result (out/vwap.csv)"
    cat out/vwap.csv
    echo "written to $(pwd)/out/vwap.csv"
else
    echo "== this build has no Python worker yet: a worker server instead"
    echo "\$ qpeach call unix:$sock '.qp.echo 1 2 3'"
    "$QP" call "unix:$sock" '.qp.echo 1 2 3'
    echo "\$ qpeach call unix:$sock '.qp.info[]'"
    "$QP" call "unix:$sock" '.qp.info[]'
    echo "\$ qpeach run --dry-run jobs/vwap.ini"
    "$QP" run --dry-run jobs/vwap.ini
fi
