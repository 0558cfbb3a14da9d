#!/usr/bin/env bash
# berth's lifecycle benchmark, side by side with runc and crun (Debian's) on one busybox
# bundle, timed by hyperfine in one run. Writes BENCHMARKS.md (medians, ratios, peak RSS,
# binary sizes, the machine and the versions) and appends bench/ANALYSIS.md, the
# hand-written account of where berth's time goes.
#
#   sudo bench/run.sh            # full run (about 5 minutes)
#   sudo bench/run.sh --quick    # fewer runs, for a look
#
# Needs root (the runtimes make namespaces, mounts and cgroups). Installs runc, crun,
# hyperfine, time and busybox-static with apt-get when missing. Everything it makes lives
# in a temporary directory (the state roots on a tmpfs mounted there), and is removed at
# the end, also on failure; containers are deleted by id with each runtime's own `delete --force`.
#
# crun 1.8.1 (Debian 12) refuses a cgroup v1 hybrid host whose v2 hierarchy still has
# controllers ("cgroups in hybrid mode not supported, drop all controllers from
# cgroupv2"). On such a host the script moves those controllers to v1 hierarchies of
# their own (mounts them under /sys/fs/cgroup/NAME), says so in its output and in
# BENCHMARKS.md, and unmounts them at the end, which gives the controllers back to v2. All
# three runtimes then run on the same host.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

runs=50
warmup=5
if [[ "${1:-}" == --quick ]]; then
    runs=10
    warmup=2
fi

if [[ "$(id -u)" != 0 ]]; then
    echo "bench/run.sh: needs root (the runtimes make namespaces, mounts and cgroups)" >&2
    exit 1
fi

say() { printf '== %s\n' "$*" >&2; }

need=()
for pkg in runc crun hyperfine time busybox-static; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi

say "building berth (release)"
# Where cargo put it (under target/<host triple>/, see .cargo/config.toml), from its own
# report rather than a guess at its layout.
berth=$(cargo build --release --locked -q -p berth --bins --message-format json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\/berth\)".*/\1/p')
[[ -x "$berth" ]] || { echo "bench/run.sh: cargo reported no berth executable" >&2; exit 1; }
runc=$(command -v runc)
crun=$(command -v crun)

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
# The runtimes' state roots on a tmpfs of our own, as /run is on a systemd host (here /run
# may be on disk, and berth fsyncs its record where runc and crun do not).
runroot=$work/run
moved_controllers=()
cleanup() {
    set +e
    # The engine's containers and network (scenario e), before the state roots go.
    if [[ -d $work/engine-data ]]; then
        local e=("$berth" --data-root "$work/engine-data" --exec-root "$runroot/engine")
        for id in $("${e[@]}" ps -a -q --no-trunc 2>/dev/null); do "${e[@]}" rm -f "$id" >/dev/null 2>&1; done
        "${e[@]}" network rm benchnet >/dev/null 2>&1
    fi
    # The sandboxes' directory is a shared mount point of its own (as iproute2 makes
    # /run/netns); it would keep the tmpfs busy.
    mountpoint -q "$runroot/engine/netns" && umount "$runroot/engine/netns"
    for rt in berth runc crun; do
        local bin=${!rt} root=$runroot/$rt
        [[ -d $root ]] || continue
        for id in $("$bin" --root "$root" list -q 2>/dev/null); do
            "$bin" --root "$root" delete --force "$id" >/dev/null 2>&1
        done
        rm -rf "$root"
    done
    mountpoint -q "$runroot" && umount "$runroot"
    for c in "${moved_controllers[@]}"; do
        # The runtimes leave their (empty) parent cgroups; a hierarchy with cgroups in it
        # would live on, hidden, after the unmount and keep the controller from v2.
        find "/sys/fs/cgroup/$c" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
        # Removed cgroups die a moment later; unmounting before they are gone leaves the
        # hierarchy alive, hidden. Wait until only its root is left.
        for _ in $(seq 100); do
            [[ $(awk -v c="$c" '$1 == c {print $3}' /proc/cgroups) == 1 ]] && break
            sleep 0.05
        done
        umount "/sys/fs/cgroup/$c" && rmdir "/sys/fs/cgroup/$c"
        # The hierarchy goes away a moment after the unmount.
        back=no
        for _ in $(seq 100); do
            grep -qw "$c" /sys/fs/cgroup/unified/cgroup.controllers && back=yes && break
            sleep 0.05
        done
        if [[ $back == yes ]]; then
            say "gave the $c controller back to cgroup v2"
        else
            say "WARNING: the $c controller is not back on cgroup v2 (cgroups left in its v1 hierarchy?)"
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

# crun and a hybrid host: move the v2 hierarchy's controllers to v1 hierarchies.
host_change="none"
unified=""
if [[ ! -e /sys/fs/cgroup/cgroup.controllers && -e /sys/fs/cgroup/unified/cgroup.controllers ]]; then
    unified=/sys/fs/cgroup/unified
fi
if [[ -n $unified ]]; then
    for c in $(cat "$unified/cgroup.controllers"); do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" "$c" "/sys/fs/cgroup/$c"
        moved_controllers+=("$c")
    done
    if ((${#moved_controllers[@]})); then
        host_change="cgroup v1 hybrid host: moved ${moved_controllers[*]} from the v2 hierarchy to v1 hierarchies of their own (mounted at /sys/fs/cgroup/NAME) for crun 1.8.1, which refuses controllers on v2 in hybrid mode; unmounted at the end"
        say "$host_change"
    fi
fi

# The bundle: busybox-static, /bin/true as the process, no terminal. runc's default config
# (`berth spec`, with the ociVersion crun 1.8.1 accepts).
bundle=$work/bundle
mkdir -p "$bundle/rootfs"/{bin,proc,dev,sys,tmp,etc}
cp /bin/busybox "$bundle/rootfs/bin/"
for a in true sh sleep; do ln -s busybox "$bundle/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$bundle/rootfs/etc/passwd"
(cd "$bundle" && "$berth" spec)
sed -i -e 's/"terminal": true/"terminal": false/' \
    -e 's/"ociVersion": "[^"]*"/"ociVersion": "1.0.2"/' "$bundle/config.json"
# "args": ["sh"] -> ["/bin/true"]; a second bundle runs `sleep` for exec.
sed -e '/"args": \[/,/\]/c\    "args": ["/bin/true"],' "$bundle/config.json" >"$work/true.json"
sed -e '/"args": \[/,/\]/c\    "args": ["/bin/sleep", "100000"],' "$bundle/config.json" >"$work/sleep.json"
cp "$work/true.json" "$bundle/config.json"
mkdir -p "$work/sleeper"
# The same rootfs, by absolute path (runc refuses a symlinked one).
sed -e "s|\"path\": \"rootfs\"|\"path\": \"$bundle/rootfs\"|" "$work/sleep.json" >"$work/sleeper/config.json"

mkdir -p "$runroot"
mount -t tmpfs -o mode=0700 berth-bench "$runroot"
for rt in berth runc crun; do
    mkdir -p "$runroot/$rt"
    # Each runtime once for real first: a failure here is a broken setup, not a number.
    if ! out=$("${!rt}" --root "$runroot/$rt" run --bundle "$bundle" check 2>&1); then
        echo "bench/run.sh: $rt cannot run the bundle: $out" >&2
        exit 1
    fi
done

hf() { # NAME, then hyperfine arguments
    local name=$1
    shift
    hyperfine --warmup "$warmup" --runs "$runs" --style basic \
        --export-json "$work/$name.json" "$@" >&2
}

# A container's life the way a shim lives it: create, start, wait until it has stopped,
# delete. (Waiting polls `state`, the same way for every runtime.)
lifecycle() { # RUNTIME
    local bin=${!1} root=$runroot/$1
    echo "$bin --root $root create --bundle $bundle lc && $bin --root $root start lc && \
until $bin --root $root state lc | grep -q '\"stopped\"'; do :; done && \
$bin --root $root delete lc"
}

say "(a) create + start + wait + delete of /bin/true"
hf lifecycle -n berth "$(lifecycle berth)" -n runc "$(lifecycle runc)" -n crun "$(lifecycle crun)"

say "(b) run of /bin/true"
hf run \
    -n berth "$berth --root $runroot/berth run --bundle $bundle rn" \
    -n runc "$runc --root $runroot/runc run --bundle $bundle rn" \
    -n crun "$crun --root $runroot/crun run --bundle $bundle rn"

say "(c) create alone (the previous one deleted before each run, untimed)"
hf create \
    --prepare "$berth --root $runroot/berth delete --force cr >/dev/null 2>&1 || true; \
$runc --root $runroot/runc delete --force cr >/dev/null 2>&1 || true; \
$crun --root $runroot/crun delete --force cr >/dev/null 2>&1 || true" \
    -n berth "$berth --root $runroot/berth create --bundle $bundle cr" \
    -n runc "$runc --root $runroot/runc create --bundle $bundle cr" \
    -n crun "$crun --root $runroot/crun create --bundle $bundle cr"

say "(d) exec of /bin/true into a running container"
for rt in berth runc crun; do
    # Not through $(...): the detached container would hold the pipe open.
    if ! "${!rt}" --root "$runroot/$rt" run -d --bundle "$work/sleeper" ex \
        </dev/null >"$work/run-d-$rt.log" 2>&1; then
        echo "bench/run.sh: $rt cannot start the container to exec into: $(cat "$work/run-d-$rt.log")" >&2
        exit 1
    fi
done
hf exec \
    -n berth "$berth --root $runroot/berth exec ex /bin/true" \
    -n runc "$runc --root $runroot/runc exec ex /bin/true" \
    -n crun "$crun --root $runroot/crun exec ex /bin/true"

say "(e) the engine: network setup per container (create + rm, without and with a network)"
engine=("$berth" --data-root "$work/engine-data" --exec-root "$runroot/engine")
tar -C "$bundle/rootfs" -cf "$work/busybox.tar" .
"${engine[@]}" import "$work/busybox.tar" benchbox >/dev/null
"${engine[@]}" network create --subnet 10.250.0.0/24 benchnet >/dev/null
engine_cmd="${engine[*]}"
hf netsetup \
    -n none "id=\$($engine_cmd create --network none benchbox true) && $engine_cmd rm \$id >/dev/null" \
    -n bridge "id=\$($engine_cmd create --network benchnet benchbox true) && $engine_cmd rm \$id >/dev/null"

say "the floor: unshare of the same namespaces, then /bin/true"
hf floor -n unshare "unshare --pid --fork --mount --uts --ipc --net /bin/true"

say "peak RSS of run (/usr/bin/time -v, median of 5)"
declare -A rss
for rt in berth runc crun; do
    samples=()
    for _ in 1 2 3 4 5; do
        samples+=("$(/usr/bin/time -v "${!rt}" --root "$runroot/$rt" run --bundle "$bundle" rss 2>&1 >/dev/null |
            awk -F': ' '/Maximum resident set size/ {print $2}')")
    done
    rss[$rt]=$(printf '%s\n' "${samples[@]}" | sort -n | sed -n 3p)
done

# hyperfine's JSON: the median of command number N (0-based) of a scenario, in ms.
median() { # SCENARIO INDEX
    awk -v want="$2" '/"median":/ { if (n++ == want) { gsub(/[^0-9.e-]/, "", $2); printf "%.2f", $2 * 1000 } }' "$work/$1.json"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
size() { stat -c %s "$1"; }

{
    echo "# berth benchmarks"
    echo
    echo "Written by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); do not edit by hand (the"
    echo "analysis at the end comes from \`bench/ANALYSIS.md\`)."
    echo
    echo "## Machine and versions"
    echo
    echo "- CPU: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores; $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
    echo "- Kernel: $(uname -r); cgroups: $([[ -e /sys/fs/cgroup/cgroup.controllers ]] && echo v2 || echo "v1 hybrid")"
    echo "- Host change for crun: $host_change"
    echo "- berth: $("$berth" --version | head -1) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)), release profile"
    echo "- runc: $("$runc" --version | head -1)"
    echo "- crun: $("$crun" --version | head -1)"
    echo "- hyperfine: $(hyperfine --version); $runs runs after $warmup warm-up runs per command"
    echo "- State roots on a tmpfs (as /run is on a systemd host); the same bundle for all:"
    echo "  busybox-static, \`berth spec\`'s config (runc's default) with no terminal."
    echo
    echo "## Medians (ms)"
    echo
    echo "| scenario | berth | runc | crun | berth/crun | berth/runc |"
    echo "|---|---:|---:|---:|---:|---:|"
    for s in lifecycle run create exec; do
        b=$(median "$s" 0) r=$(median "$s" 1) c=$(median "$s" 2)
        case $s in
            lifecycle) label="(a) create + start + wait + delete" ;;
            run) label="(b) run" ;;
            create) label="(c) create" ;;
            exec) label="(d) exec into a running container" ;;
        esac
        echo "| $label | $b | $r | $c | $(ratio "$b" "$c") | $(ratio "$b" "$r") |"
    done
    echo
    echo "The floor, \`unshare --pid --fork --mount --uts --ipc --net /bin/true\`: $(median floor 0) ms."
    echo
    echo "## Network setup per container (engine)"
    echo
    echo "\`berth create IMAGE\` then \`berth rm\` (the engine's bookkeeping, bundle and"
    echo "directories), without a network and on a bridge network; the difference is making"
    echo "the sandbox and the endpoint up (netns, veth, address, routes) and tearing them down."
    echo
    echo "| | median (ms) |"
    echo "|---|---:|"
    echo "| \`--network none\` | $(median netsetup 0) |"
    echo "| \`--network benchnet\` (bridge) | $(median netsetup 1) |"
    echo "| network setup and teardown | $(awk -v a="$(median netsetup 1)" -v b="$(median netsetup 0)" 'BEGIN { printf "%.2f", a - b }') |"
    echo
    echo "## Peak RSS and size"
    echo
    echo "| | berth | runc | crun |"
    echo "|---|---:|---:|---:|"
    echo "| peak RSS of \`run\` (KiB, median of 5) | ${rss[berth]} | ${rss[runc]} | ${rss[crun]} |"
    echo "| binary (bytes) | $(size "$berth") | $(size "$runc") | $(size "$crun") |"
    echo
    echo "Targets (issue 4): lifecycle median ≤ 0.8 × crun's; peak RSS ≤ crun's; release binary"
    echo "≤ 4 MB stripped."
    echo
    cat "$repo/bench/ANALYSIS.md"
} >"$repo/BENCHMARKS.md"

say "wrote BENCHMARKS.md"
sed -n '/## Medians/,/## Peak/p' "$repo/BENCHMARKS.md" >&2
