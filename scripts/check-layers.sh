#!/bin/sh
# check-layers.sh [BUILD] - the dependency order of the rooms
# (docs/ARCHITECTURE.md, "Dependency order"), checked. Run by `make check`.
#
# 1. Includes: every #include "..." of src/ROOM/* and include/qpeach/*
#    names a header of a room that ROOM may use: "qpeach/X.h" (a public
#    header, in the room that implements it), "ROOM/x_int.h" (another
#    room's internal header) or "x_int.h" (its own folder). src/cli and
#    the Python extension use public headers only (the extension's files
#    also their own _qpeach_int.h). No "../" anywhere.
# 2. Symbols (when BUILD is given and its objects exist): every qp_ or
#    qp__ function an object of a room calls is defined in a room it may
#    use, which catches a prototype declared by hand instead of included.
# Prints each violation on one line and exits 1 when there is any.

allowed() {     # the rooms a room may use, itself included
    case $1 in
    core)   echo "core" ;;
    kdb)    echo "core kdb" ;;
    net)    echo "core net" ;;
    server) echo "core kdb net server" ;;
    py)     echo "core kdb net server py" ;;
    sched)  echo "core kdb net sched" ;;
    cli)    echo "core kdb net server py sched cli" ;;
    *)      echo "" ;;
    esac
}

public_room() { # the room implementing public header qpeach/$1
    case $1 in
    value.h|ipc.h|table.h|qparse.h|topo.h|pykx.h|version.h) echo core ;;
    kdb.h) echo kdb ;;
    conn.h|auth.h) echo net ;;
    server.h) echo server ;;
    py.h) echo py ;;
    job.h|journal.h|sched.h) echo sched ;;
    *) echo "" ;;
    esac
}

export LC_ALL=C
bad=0
fail() { echo "layers: $*"; bad=1; }

# The room a header named in #include "$2" from a file of room $1 is in.
header_room() {
    case $2 in
    ../*|*/../*) echo "../" ;;
    qpeach/*) public_room "${2#qpeach/}" ;;
    */*) echo "${2%%/*}" ;;
    *) echo "$1" ;;
    esac
}

check_file() {  # file, its room, scope: all, public, pyext (public + _qpeach_int.h)
    for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"); do
        r=$(header_room "$2" "$h")
        if [ "$r" = "../" ]; then fail "$1: includes \"$h\" (a ../ path)"; continue; fi
        if [ -z "$r" ]; then fail "$1: includes \"$h\", a header of no room"; continue; fi
        [ "$3" = pyext ] && [ "$h" = _qpeach_int.h ] && continue
        if [ "$3" != all ] && [ "${h#qpeach/}" = "$h" ]; then
            fail "$1: includes \"$h\"; it may use public headers (qpeach/*.h) only"
            continue
        fi
        case " $(allowed "$2") " in
        *" $r "*) ;;
        *) fail "$1 ($2) includes \"$h\" ($r): $2 may use $(allowed "$2")" ;;
        esac
    done
}

cd "$(dirname "$0")/.." || exit 1
rooms="core kdb net server py sched cli"
for room in $rooms; do
    [ -d "src/$room" ] || { fail "src/$room: missing"; continue; }
    scope=all
    [ "$room" = cli ] && scope=public
    for f in src/"$room"/*.c src/"$room"/*.h; do
        [ -e "$f" ] && check_file "$f" "$room" "$scope"
    done
done
for f in include/qpeach/*.h; do
    room=$(public_room "$(basename "$f")")
    if [ -z "$room" ]; then fail "$f: in no room (add it to public_room in $0)"; continue; fi
    check_file "$f" "$room" public
done
for f in python/qpeach/_qpeach*.[ch]; do
    [ -e "$f" ] && check_file "$f" cli pyext
done
for d in src tests bench python; do
    [ -d "$d" ] || continue
    grep -rn --include='*.[ch]' '#[[:space:]]*include[[:space:]]*"\.\./' "$d" |
        while IFS= read -r l; do echo "layers: $l: a ../ include"; done | grep . && bad=1
done

# Symbols: where each qp_ function is defined, then who calls it. Only the
# objects of today's sources count: a build folder keeps the objects of files
# since moved or removed.
objects() {     # the objects of room $1 that have a source file
    for c in src/"$1"/*.c; do
        o="$build/obj/${c%.c}.o"
        [ -e "$o" ] && echo "$o"
    done
}
build=$1
if [ -n "$build" ] && ls "$build"/obj/src/core/*.o >/dev/null 2>&1; then
    defs=$(mktemp) || exit 1
    for room in $rooms; do
        for o in $(objects "$room"); do
            nm -g --defined-only "$o" | awk -v r="$room" '$3 ~ /^qp_/ { print $3, r }'
        done
    done | sort -u >"$defs"
    for room in $rooms; do
        for o in $(objects "$room"); do
            nm -u "$o" | awk '$2 ~ /^qp_/ { print $2 }' | sort -u |
            join - "$defs" | while read -r sym r; do
                case " $(allowed "$room") " in
                *" $r "*) ;;
                *) echo "layers: $o ($room) calls $sym, defined in $r" ;;
                esac
            done
        done
    done | grep . && bad=1
    rm -f "$defs"
fi
[ $bad -eq 0 ] && echo "layers: core <- kdb, net <- server <- py; sched on core, kdb, net; cli on all: ok"
exit $bad
