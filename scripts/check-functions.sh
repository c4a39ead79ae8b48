#!/bin/sh
# check-functions.sh [MAX] - no C function in src/ (or the Python
# extension) longer than MAX lines (100: the project's limit). Run by
# `make check`. A function is what the project's layout makes it: its
# opening brace alone at the start of a line, its closing brace at the
# start of a line; it counts from the line before the brace (the end of
# its signature) to the closing brace. Prints each one over the limit.
max=${1:-100}
cd "$(dirname "$0")/.." || exit 1
long=$(for f in src/*/*.c python/qpeach/_qpeach*.c; do
    [ -e "$f" ] || continue
    awk -v f="$f" -v max="$max" '
        /^\{/ { start = NR - 1; sig = prev }
        /^\}/ && start { n = NR - start + 1; if (n > max) printf "%s:%d: %d lines: %s\n", f, start, n, sig; start = 0 }
        { prev = $0 }' "$f"
done)
if [ -n "$long" ]; then
    echo "functions over $max lines (split them):"
    echo "$long"
    exit 1
fi
echo "functions: none over $max lines"
