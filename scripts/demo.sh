#!/bin/sh
# make demo: generate 10M trades once (cached under data/), run the VWAP job
# (jobs/vwap.ini) on 2 local pinned workers with a progress bar, print the
# result and where it was written. The first run converts the CSV once into
# a kdb+ splayed table (jobs/.qpeach/vwap.input-*/), which the workers map.
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

echo "== the plan"
"$QP" run --dry-run jobs/vwap.ini | sed -n '1,4p;/^plan/,$p'

echo "== qpeach run jobs/vwap.ini"
"$QP" run jobs/vwap.ini

echo "== the input, as the kdb+ table the workers mapped"
"$QP" db info "$(ls -d jobs/.qpeach/vwap.input-*/ | head -1)"

echo "== result"
cat out/vwap.csv
echo "written to $(pwd)/out/vwap.csv"
