#!/bin/sh
# Runs every CUnit binary given; each prints CUnit's run summary.
# Exits non-zero if any suite failed or crashed. Suites whose kdb+
# conformance tests did not run (no q-written fixtures: tests/README.md)
# say so; their counts are added up into one line at the end.
build=$1; shift
status=0
notrun=0
log=$(mktemp) || exit 1
for t in "$@"; do
    echo "== $t"
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    [ $rc -eq 0 ] || { echo "FAILED: $t (exit $rc)"; status=1; }
    n=$(sed -n 's/^kdb+ conformance against q-written databases: \([0-9]*\) tests not run.*/\1/p' "$log")
    notrun=$((notrun + ${n:-0}))
done
rm -f "$log"
[ $notrun -eq 0 ] || echo "kdb+ conformance against q-written databases: $notrun unit tests not run (no fixtures; see tests/README.md)"
exit $status
