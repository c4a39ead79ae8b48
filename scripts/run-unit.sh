#!/bin/sh
# Runs every CUnit binary given; each prints CUnit's run summary.
# Exits non-zero if any suite failed or crashed.
build=$1; shift
status=0
for t in "$@"; do
    echo "== $t"
    "$t" || { echo "FAILED: $t (exit $?)"; status=1; }
done
exit $status
