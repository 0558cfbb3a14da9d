#!/usr/bin/env bash
# berth's main job on a fresh machine: build berth, make an OCI bundle with a busybox
# rootfs, write its config with `berth spec`, and run a container from it.
#
# Usage: scripts/demo.sh [--dry-run | --real] [--keep]
#   --dry-run  print the plan of `berth run` and touch nothing on the host (the default,
#              while the Linux backend is in progress: issue 3)
#   --real     run the container for real (root; needs the Linux backend)
#   --keep     keep the bundle directory and print its path
# Environment: BERTH_DEMO_MODE=dry-run|real (as the flags), BUSYBOX=/path/to/static/busybox
# (else Debian's busybox-static is installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${BERTH_DEMO_MODE:-dry-run}"
keep=false
for arg in "$@"; do
    case "$arg" in
        --dry-run) mode=dry-run ;;
        --real) mode=real ;;
        --keep) keep=true ;;
        -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
case "$mode" in
    dry-run | real) ;;
    *) echo "demo.sh: BERTH_DEMO_MODE must be dry-run or real, not $mode" >&2; exit 2 ;;
esac

say() { printf '== %s\n' "$*" >&2; }

# A static busybox: it runs in a rootfs with no libc.
busybox="${BUSYBOX:-/bin/busybox}"
if [[ -z "${BUSYBOX:-}" ]] && ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
    grep -q 'install ok installed'; then
    say "installing busybox-static"
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
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
cargo build --release --locked -p berth
berth="$PWD/target/release/berth"

work="$(mktemp -d "${TMPDIR:-/tmp}/berth-demo.XXXXXX")"
if [[ "$keep" == true ]]; then
    say "keeping $work"
else
    trap 'rm -rf "$work"' EXIT
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
    say "berth run"
    "$berth" run --bundle "$bundle" "$id"
fi
