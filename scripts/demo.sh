#!/usr/bin/env bash
# berth's main job on a fresh machine: build berth, make an OCI bundle with a busybox
# rootfs, write its config with `berth spec`, and run a container from it; then make an
# image of the same rootfs and run containers from it with the engine (`berth run IMAGE`).
#
# Usage: scripts/demo.sh [--real | --dry-run] [--keep]
#   --real     run the container for real (the default; as root, else through sudo), then
#              show its whole lifecycle: create, start, state, kill, delete
#   --dry-run  print the plan of `berth run` and touch nothing on the host (no root needed)
#   --keep     keep the bundle directory and print its path
# Environment: BERTH_DEMO_MODE=dry-run|real (as the flags), BUSYBOX=/path/to/static/busybox
# (else Debian's busybox-static is installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${BERTH_DEMO_MODE:-real}"
keep=false
for arg in "$@"; do
    case "$arg" in
        --dry-run) mode=dry-run ;;
        --real) mode=real ;;
        --keep) keep=true ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
case "$mode" in
    dry-run | real) ;;
    *) echo "demo.sh: BERTH_DEMO_MODE must be dry-run or real, not $mode" >&2; exit 2 ;;
esac

say() { printf '== %s\n' "$*" >&2; }
sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)

# A static busybox: it runs in a rootfs with no libc.
busybox="${BUSYBOX:-/bin/busybox}"
if [[ -z "${BUSYBOX:-}" ]] && ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
    grep -q 'install ok installed'; then
    say "installing busybox-static"
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends busybox-static </dev/null
fi
# ldd fails ("not a dynamic executable") exactly for a static binary.
if [[ ! -x "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
    echo "demo.sh: $busybox is not a static executable" >&2
    exit 1
fi

say "building berth"
# Where cargo put it (under target/<host triple>/, see .cargo/config.toml), from its own
# report rather than a guess at its layout.
berth=$(cargo build --release --locked -p berth --bins --message-format json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\/berth\)".*/\1/p')
[[ -x "$berth" ]] || { echo "demo.sh: cargo reported no berth executable" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-demo.XXXXXX")"
if [[ "$keep" == true ]]; then
    say "keeping $work"
else
    # The state root belongs to root after a real run.
    trap '"${sudo[@]}" rm -rf "$work"' EXIT
fi
bundle="$work/bundle"

say "making a busybox bundle in $bundle"
rootfs="$bundle/rootfs"
mkdir -p "$rootfs"/{bin,etc,dev,proc,sys,tmp,root}
cp "$busybox" "$rootfs/bin/busybox"
# What `busybox --install -s` makes, but relative: its own links would name the host path
# of this busybox, which does not exist inside the container.
for applet in $("$rootfs/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

say "berth spec"
"$berth" spec --bundle "$bundle"
# No terminal (the demo's output is a log, not a session) and a command that shows where
# it runs. perl is in every Debian (perl-base).
perl -0pi -e 's/"terminal":\s*true/"terminal": false/;
    s/"args":\s*\[\s*"sh"\s*\]/"args": ["sh", "-c", "echo hello from berth in \$(hostname); id; ls \/"]/' \
    "$bundle/config.json"

id="demo-$$"
if [[ "$mode" == dry-run ]]; then
    say "berth run --dry-run (the plan; nothing on the host is touched)"
    # A state root of our own, to show that a dry run does not create it.
    "$berth" --root "$work/state" run --dry-run --bundle "$bundle" "$id"
    if [[ -e "$work/state" ]]; then
        echo "demo.sh: the dry run created $work/state" >&2
        exit 1
    fi
else
    # A state root of our own: the demo leaves nothing in /run/berth.
    b=("${sudo[@]}" "$berth" --root "$work/state")
    say "berth run (the container's output, then its exit code is berth's)"
    "${b[@]}" run --bundle "$bundle" "$id"
    say "berth create, start, state, kill, delete"
    perl -0pi -e 's/"args":\s*\[[^\]]*\]/"args": ["sleep", "1000"]/' "$bundle/config.json"
    "${b[@]}" create --bundle "$bundle" "$id" </dev/null
    "${b[@]}" list
    "${b[@]}" start "$id"
    "${b[@]}" state "$id"
    "${b[@]}" kill "$id" KILL
    for _ in $(seq 100); do
        "${b[@]}" state "$id" | grep -q '"status": "stopped"' && break
        sleep 0.05
    done
    "${b[@]}" delete "$id"
    left="$("${b[@]}" list -q)"
    if [[ -n "$left" ]]; then
        echo "demo.sh: berth list still shows: $left" >&2
        exit 1
    fi
    say "done: berth list is empty again"

    # The engine: an image made here from the same rootfs, and containers made from it,
    # with a data root and exec root of our own.
    e=("${sudo[@]}" "$berth" --data-root "$work/data" --exec-root "$work/exec")
    cleanup_engine() {
        for c in $("${e[@]}" ps -a -q --no-trunc 2>/dev/null); do "${e[@]}" rm -f "$c"; done
        "${sudo[@]}" rm -rf "$work"
    }
    [[ "$keep" == true ]] || trap cleanup_engine EXIT
    say "berth import (a busybox image, made locally)"
    tar -C "$rootfs" -cf "$work/busybox.tar" .
    "${e[@]}" import "$work/busybox.tar" busybox
    "${e[@]}" images
    say "berth run --rm busybox echo hi"
    "${e[@]}" run --rm busybox echo hi
    say "berth run -d --name web busybox (a loop), logs, exec ps, stop, rm"
    "${e[@]}" run -d --name web busybox sh -c 'while true; do echo tick; sleep 1; done'
    sleep 2
    "${e[@]}" ps
    "${e[@]}" logs web
    "${e[@]}" exec web ps
    "${e[@]}" stop -t 1 web
    "${e[@]}" ps -a
    "${e[@]}" rm web
    say "done: the engine's containers are gone too"
fi
