//! End-to-end on a cgroup v2 (unified) host: the real `berth` binary in a qemu guest.
//!
//! This machine (and CI) has a cgroup v1 hybrid hierarchy, so berth's v2 paths are tried in
//! a guest: Debian's `linux-image-amd64` kernel booted by `qemu-system-x86_64` (TCG, no
//! network) with `cgroup_no_v1=all`. An initramfs built here (busybox-static and the
//! virtio/9p modules) mounts the host's `/` read-only over 9p as the guest's root, a
//! writable 9p share for the results, cgroup2 at `/sys/fs/cgroup`, tmpfs at `/tmp` and
//! `/run`, and runs this same test binary in guest mode ([`GUEST_ENV`] set). The guest
//! boots once and runs every scenario; each scenario reports named checks as JSON lines,
//! and each check is a case of its own here, so a failure names what broke on v2.
//!
//! The host side cleans up on every path: qemu is killed by its pid (a guard), the
//! initramfs and the results live in a tempdir.

#![forbid(unsafe_code)]
// A harness = false test: clippy.toml's allow-unwrap-in-tests does not see it as a test.
#![allow(clippy::unwrap_used)]

mod e2e_cli_support;
mod e2e_linux_support;

/// Set in the guest: where the results go (the writable 9p share).
const GUEST_ENV: &str = "BERTH_V2_GUEST";
/// Set in the guest: the `berth` binary (a host path, seen through the 9p root).
const BIN_ENV: &str = "BERTH_V2_BIN";

/// The guest's scenarios in the order they run, each with the checks it reports; every
/// check becomes a host-side case of that name.
macro_rules! scenarios {
    ($($scenario:ident: [$($check:ident),* $(,)?];)*) => {
        /// `(scenario, its function, the checks it reports)`.
        const SCENARIOS: &[(&str, fn(&guest::Guest, &mut guest::Report), &[&str])] =
            &[$((stringify!($scenario), guest::$scenario, &[$(stringify!($check)),*])),*];

        /// One host-side case per check.
        mod case {
            $($(pub(super) fn $check() {
                super::host::assert_check(stringify!($check));
            })*)*
        }

        const CASES: &[e2e_linux_support::Case] =
            &[$($((stringify!($check), case::$check as fn()),)*)*];
    };
}

scenarios! {
    sanity: [cgroup2_unified];
    limits_at_create: [
        create_state_created,
        create_memory_max,
        create_pids_max,
        create_cpu_max,
        create_cpu_weight,
        create_io_weight,
        delete_created_leaves_nothing,
    ];
    run_echo: [run_echo_hi, cgroupns_view];
    lifecycle: [
        pause_frozen,
        resume_thawed,
        update_memory,
        update_pids,
        update_cpu,
        events_stats,
        delete_running_leaves_nothing,
    ];
    oom: [oom_kill_exit_137, oom_kill_counted];
    devices: [devices_control_no_rules, devices_filtered];
    default_spec: [
        default_spec_create,
        default_spec_pause_resume,
        default_spec_events_stats,
        default_spec_update_delete,
    ];
    final_sweep: [nothing_left];
}

fn main() {
    if let Some(results) = std::env::var_os(GUEST_ENV) {
        guest::main(results.into());
        return;
    }
    e2e_linux_support::run(CASES);
}

/// The host side: builds the initramfs, boots qemu once, reads what the guest reported.
mod host {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::{BIN_ENV, GUEST_ENV, SCENARIOS};

    /// The whole guest run (boot, checks, power-off) must end within this.
    const QEMU_TIMEOUT: Duration = Duration::from_secs(170);
    /// Modules the guest needs for 9p over virtio-pci (their dependencies come along).
    const MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];
    /// Where the results share is mounted in the guest.
    const RESULTS_IN_GUEST: &str = "/run/results";
    /// Where berth and this test binary are in the guest (a read-only share).
    const BINS_IN_GUEST: &str = "/run/bins";

    /// What one guest run reported.
    #[derive(Debug)]
    struct Outcome {
        /// Check name to `Ok(detail)` or `Err(why it failed)`.
        results: BTreeMap<String, Result<String, String>>,
        /// Whether the guest wrote its `done` marker.
        finished: bool,
        /// The end of the serial console and of the guest binary's own output.
        log_tail: String,
    }

    /// Asserts that the guest reported `name` as passed.
    pub(super) fn assert_check(name: &str) {
        let outcome = match outcome() {
            Ok(o) => o,
            Err(e) => panic!("{name}: the cgroup v2 guest did not run: {e}"),
        };
        match outcome.results.get(name) {
            Some(Ok(_)) => {}
            Some(Err(why)) => panic!("{name} failed in the cgroup v2 guest: {why}"),
            None => panic!(
                "{name}: the guest reported nothing for it (guest finished: {}); log tail:\n{}",
                outcome.finished, outcome.log_tail
            ),
        }
    }

    /// The one guest run, booted on first use; later cases reuse it.
    fn outcome() -> &'static Result<Outcome, String> {
        static OUTCOME: OnceLock<Result<Outcome, String>> = OnceLock::new();
        OUTCOME.get_or_init(|| match std::panic::catch_unwind(boot_guest) {
            Ok(result) => result,
            Err(panic) => Err(panic_text(&*panic)),
        })
    }

    pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".to_owned())
    }

    /// qemu, killed by its pid (and reaped) on drop unless it has exited.
    struct Qemu(Child);

    impl Drop for Qemu {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    fn boot_guest() -> Result<Outcome, String> {
        let t0 = Instant::now();
        let (kernel, moddir) = find_kernel()?;
        let qemu = find_in_path("qemu-system-x86_64")
            .ok_or("qemu-system-x86_64 not found: apt-get install qemu-system-x86")?;
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return Err("/bin/busybox is missing: apt-get install busybox-static".into());
        }
        let berth = super::e2e_cli_support::berth_bin();
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        for p in [berth, exe.as_path()] {
            let s = p.to_string_lossy();
            if s.contains(['\'', '"', ' ', '\\']) {
                return Err(format!("{s}: a path the guest's init script cannot quote"));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-v2-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let results = dir.path().join("results");
        std::fs::create_dir(&results).map_err(|e| format!("{}: {e}", results.display()))?;
        // berth and this test binary reach the guest through a read-only share of their
        // own: the guest mounts a tmpfs on /tmp (and /run), which would hide them in a
        // checkout under /tmp. (They are static, so nothing else of the host's is needed.)
        let bins = dir.path().join("bins");
        std::fs::create_dir(&bins).map_err(|e| format!("{}: {e}", bins.display()))?;
        let exe_name = exe.file_name().ok_or("current_exe has no file name")?;
        for (from, name) in [
            (berth, std::ffi::OsStr::new("berth")),
            (exe.as_path(), exe_name),
        ] {
            let to = bins.join(name);
            if std::fs::hard_link(from, &to).is_err() {
                std::fs::copy(from, &to)
                    .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
            }
        }
        let in_guest = Path::new(BINS_IN_GUEST);
        let script = init_script(&in_guest.join("berth"), &in_guest.join(exe_name));
        let initrd = dir.path().join("initrd.cpio");
        let image = initramfs(&moddir, busybox, &script)?;
        std::fs::write(&initrd, image).map_err(|e| format!("{}: {e}", initrd.display()))?;
        let built = t0.elapsed();

        let serial = dir.path().join("serial.log");
        let qemu_log = dir.path().join("qemu.log");
        let log = std::fs::File::create(&qemu_log).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let child = Command::new(&qemu)
            .args(["-nographic", "-no-reboot", "-m", "1024", "-smp", "1"])
            .args(["-nic", "none", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args([
                "-append",
                "console=ttyS0 cgroup_no_v1=all panic=-1 quiet",
                "-virtfs",
                "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
                "-virtfs",
            ])
            .arg(format!(
                "local,path={},mount_tag=results,security_model=none",
                results.display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=bins,security_model=none,readonly=on",
                bins.display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", qemu.display()))?;
        let mut qemu_child = Qemu(child);
        let mut booted = None;
        let status = loop {
            if booted.is_none() && results.join("ready").exists() {
                booted = Some(t1.elapsed());
            }
            match qemu_child.0.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if t1.elapsed() > QEMU_TIMEOUT => {
                    let _ = qemu_child.0.kill();
                    let _ = qemu_child.0.wait();
                    break Err(format!("qemu ran longer than {QEMU_TIMEOUT:?}: killed"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(e) => break Err(format!("waiting for qemu: {e}")),
            }
        };
        let ran = t1.elapsed();
        let log_tail = format!(
            "--- serial console (end) ---\n{}\n--- guest test binary (end) ---\n{}\n--- qemu ---\n{}",
            tail(&serial, 40),
            tail(&results.join("guest.log"), 40),
            tail(&qemu_log, 20)
        );
        let boot = booted.map_or("never".to_owned(), |b| format!("{:.1}s", b.as_secs_f64()));
        let guest_log = std::fs::read_to_string(results.join("guest.log")).unwrap_or_default();
        for line in guest_log.lines().filter(|l| l.starts_with("scenario ")) {
            println!("cgroup v2 guest: {line}");
        }
        println!(
            "cgroup v2 guest: berth build and initramfs {:.1}s, boot to checks {boot}, \
             qemu total {:.1}s, all {:.1}s",
            built.as_secs_f64(),
            ran.as_secs_f64(),
            t0.elapsed().as_secs_f64()
        );
        let status = status.map_err(|e| format!("{e}\n{log_tail}"))?;
        if booted.is_none() {
            return Err(format!(
                "the guest never started its checks (qemu {status})\n{log_tail}"
            ));
        }
        let finished = results.join("done").exists();
        let results = read_results(&results.join("results.jsonl"))?;
        Ok(Outcome {
            results,
            finished,
            log_tail,
        })
    }

    /// Parses the guest's JSON lines; refuses a name no scenario declares.
    fn read_results(path: &Path) -> Result<BTreeMap<String, Result<String, String>>, String> {
        let known: BTreeSet<&str> = SCENARIOS.iter().flat_map(|s| s.2.iter().copied()).collect();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("result line {line:?}: {e}"))?;
            let (Some(name), Some(ok), Some(detail)) =
                (v["check"].as_str(), v["ok"].as_bool(), v["detail"].as_str())
            else {
                return Err(format!("result line {line:?}: not a check result"));
            };
            if !known.contains(name) {
                return Err(format!("the guest reported an unknown check {name:?}"));
            }
            let detail = detail.to_owned();
            out.insert(name.to_owned(), if ok { Ok(detail) } else { Err(detail) });
        }
        Ok(out)
    }

    fn tail(path: &Path, lines: usize) -> String {
        let bytes = std::fs::read(path).unwrap_or_default();
        // The serial console has the firmware's terminal escapes: control characters go.
        let text: String = String::from_utf8_lossy(&bytes)
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn find_in_path(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .chain(["/usr/bin".into(), "/usr/sbin".into()])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// The newest `/boot/vmlinuz-VERSION` whose modules are installed (`/lib/modules/VERSION`):
    /// Debian's kernel, not the host's running one (which has no modules on disk).
    fn find_kernel() -> Result<(PathBuf, PathBuf), String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/boot").map_err(|e| format!("/boot: {e}"))? {
            let name = entry.map_err(|e| e.to_string())?.file_name();
            let Some(version) = name.to_str().and_then(|n| n.strip_prefix("vmlinuz-")) else {
                continue;
            };
            let moddir = Path::new("/lib/modules").join(version);
            if moddir.join("modules.dep").is_file() {
                found.push((version_key(version), version.to_owned(), moddir));
            }
        }
        found.sort();
        let (_, version, moddir) = found.pop().ok_or(
            "no /boot/vmlinuz-* with modules in /lib/modules: apt-get install linux-image-amd64",
        )?;
        Ok((
            Path::new("/boot").join(format!("vmlinuz-{version}")),
            moddir,
        ))
    }

    /// `6.1.0-56-amd64` to `[6, 1, 0, 56]`, for ordering.
    fn version_key(version: &str) -> Vec<u64> {
        version
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    }

    /// The guest's `/init`: load the modules, mount the host's `/` (read-only) and the
    /// results share, the kernel filesystems and cgroup2; then switch to the host's root
    /// and run this test binary in guest mode; power off whatever happens.
    fn init_script(berth: &Path, exe: &Path) -> String {
        let stage2 = format!(
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin; \
             {GUEST_ENV}={RESULTS_IN_GUEST} {BIN_ENV}={berth} {exe} \
             >{RESULTS_IN_GUEST}/guest.log 2>&1; \
             /bin/busybox poweroff -f",
            berth = berth.display(),
            exe = exe.display(),
        );
        format!(
            r#"#!/bin/busybox sh
B=/bin/busybox
fail() {{ echo "berth-v2 init: $*"; $B poweroff -f; }}
$B mount -t devtmpfs dev /dev || fail devtmpfs
for m in $($B ls /mods); do $B insmod /mods/$m || fail "insmod $m"; done
R=/newroot
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot $R || fail "9p root"
$B mount -t proc proc $R/proc || fail proc
$B mount -t sysfs sys $R/sys || fail sysfs
$B mount -t cgroup2 none $R/sys/fs/cgroup || fail cgroup2
$B mount --move /dev $R/dev || fail "move /dev"
$B mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
$B mount -t devpts devpts $R/dev/pts || fail devpts
$B mount -t tmpfs tmpfs $R/dev/shm || fail shm
$B mount -t tmpfs tmpfs $R/tmp || fail /tmp
$B mount -t tmpfs tmpfs $R/run || fail /run
$B mkdir $R{RESULTS_IN_GUEST}
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results $R{RESULTS_IN_GUEST} || fail "9p results"
$B mkdir $R{BINS_IN_GUEST}
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 bins $R{BINS_IN_GUEST} || fail "9p bins"
exec $B switch_root $R /bin/busybox sh -c '{stage2}'
"#
        )
    }

    /// A `newc` cpio archive: `/init`, busybox, the modules (`/mods/NN-name.ko`, loaded in
    /// name order) and `/dev/console`.
    fn initramfs(moddir: &Path, busybox: &Path, init: &str) -> Result<Vec<u8>, String> {
        let mut cpio = Cpio::default();
        for d in ["bin", "dev", "mods", "newroot", "proc", "sys"] {
            cpio.entry(d, 0o040_755, (0, 0), &[]);
        }
        cpio.entry("dev/console", 0o020_600, (5, 1), &[]);
        cpio.entry("init", 0o100_755, (0, 0), init.as_bytes());
        let bb = std::fs::read(busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
        cpio.entry("bin/busybox", 0o100_755, (0, 0), &bb);
        for (i, module) in module_closure(moddir, MODULES)?.iter().enumerate() {
            let name = module_name(module);
            let data = module_bytes(&moddir.join(module))?;
            cpio.entry(&format!("mods/{i:02}-{name}.ko"), 0o100_644, (0, 0), &data);
        }
        Ok(cpio.finish())
    }

    /// `kernel/fs/9p/9p.ko(.xz)` to `9p`; `-` and `_` are the same in module names.
    fn module_name(path: &str) -> String {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.split(".ko").next().unwrap_or(file).replace('-', "_")
    }

    /// A module file's bytes, decompressed on the host when the kernel ships it compressed.
    fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
        let s = path.to_string_lossy();
        let tool = if s.ends_with(".ko") {
            return std::fs::read(path).map_err(|e| format!("{s}: {e}"));
        } else if s.ends_with(".ko.xz") {
            "xz"
        } else if s.ends_with(".ko.zst") {
            "zstd"
        } else if s.ends_with(".ko.gz") {
            "gzip"
        } else {
            return Err(format!("{s}: unknown module format"));
        };
        let out = Command::new(tool)
            .arg("-dc")
            .arg(path)
            .output()
            .map_err(|e| format!("{tool} -dc {s}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{tool} -dc {s}: {}", out.status));
        }
        Ok(out.stdout)
    }

    /// The module files (relative to `moddir`) that loading `wanted` takes, dependencies
    /// first (from `modules.dep`); built-in modules need none.
    fn module_closure(moddir: &Path, wanted: &[&str]) -> Result<Vec<String>, String> {
        let read = |f: &str| {
            std::fs::read_to_string(moddir.join(f))
                .map_err(|e| format!("{}/{f}: {e}", moddir.display()))
        };
        let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for line in read("modules.dep")?.lines() {
            if let Some((file, rest)) = line.split_once(':') {
                let needs = rest.split_whitespace().map(str::to_owned).collect();
                deps.insert(module_name(file), (file.to_owned(), needs));
            }
        }
        let builtin: BTreeSet<String> = read("modules.builtin")
            .unwrap_or_default()
            .lines()
            .map(module_name)
            .collect();
        fn visit(
            name: &str,
            deps: &BTreeMap<String, (String, Vec<String>)>,
            builtin: &BTreeSet<String>,
            out: &mut Vec<String>,
        ) -> Result<(), String> {
            if builtin.contains(name) || out.iter().any(|f| module_name(f) == name) {
                return Ok(());
            }
            let (file, needs) = deps
                .get(name)
                .ok_or_else(|| format!("kernel module {name} is neither built in nor installed"))?;
            for dep in needs {
                visit(&module_name(dep), deps, builtin, out)?;
            }
            out.push(file.clone());
            Ok(())
        }
        let mut out = Vec::new();
        for name in wanted {
            visit(name, &deps, &builtin, &mut out)?;
        }
        Ok(out)
    }

    /// A `newc` ("070701") cpio writer: what the kernel unpacks as an initramfs.
    #[derive(Debug, Default)]
    struct Cpio {
        buf: Vec<u8>,
        ino: u32,
    }

    impl Cpio {
        fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
            self.ino += 1;
            let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
            let fields = [
                self.ino,
                mode,
                0,
                0,
                nlink,
                0,
                u32::try_from(data.len()).expect("initramfs files are small"),
                0,
                0,
                rdev.0,
                rdev.1,
                u32::try_from(name.len() + 1).expect("short names"),
                0,
            ];
            self.buf.extend_from_slice(b"070701");
            for f in fields {
                self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
            }
            self.buf.extend_from_slice(name.as_bytes());
            self.buf.push(0);
            self.pad();
            self.buf.extend_from_slice(data);
            self.pad();
        }

        fn pad(&mut self) {
            while !self.buf.len().is_multiple_of(4) {
                self.buf.push(0);
            }
        }

        fn finish(mut self) -> Vec<u8> {
            self.entry("TRAILER!!!", 0, (0, 0), &[]);
            self.buf
        }
    }
}

/// The guest side: runs in the qemu guest, as PID 1's child, on a cgroup v2 host.
mod guest {
    use std::cell::Cell;
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::e2e_linux_support::{Rootfs, alive};
    use super::{BIN_ENV, SCENARIOS};

    /// Where berth keeps its state in the guest (tmpfs).
    const STATE_ROOT: &str = "/run/berth";
    /// The guest's cgroup2 mount.
    const CGROUP: &str = "/sys/fs/cgroup";
    /// One berth command may take this long (TCG is slow, but not this slow).
    const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

    type Check = Result<String, String>;

    /// What the guest scenarios share: the berth binary and a counter for output files.
    #[derive(Debug)]
    pub(super) struct Guest {
        berth: PathBuf,
        seq: Cell<u32>,
    }

    /// Appends one JSON line per check to the results share, as soon as it is known.
    #[derive(Debug)]
    pub(super) struct Report {
        file: std::fs::File,
        expected: &'static [&'static str],
        reported: BTreeSet<&'static str>,
    }

    impl Report {
        /// Records the result of `name`, which must be one of the scenario's checks.
        pub(super) fn check(&mut self, name: &'static str, result: Check) {
            assert!(
                self.expected.contains(&name),
                "check {name} is not declared for this scenario"
            );
            let (ok, detail) = match result {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            let line = json!({"check": name, "ok": ok, "detail": detail}).to_string();
            self.file
                .write_all(format!("{line}\n").as_bytes())
                .and_then(|()| self.file.sync_all())
                .unwrap();
            self.reported.insert(name);
            println!("{name}: {}", if ok { "ok" } else { "FAILED" });
        }

        /// Reports every not yet reported check of the scenario as failed with `why`.
        fn fail_rest(&mut self, why: &str) {
            for name in self.expected {
                if !self.reported.contains(name) {
                    self.check(name, Err(why.to_owned()));
                }
            }
        }
    }

    pub(super) fn main(results: PathBuf) {
        let berth = std::env::var_os(BIN_ENV).expect("the init script sets it");
        let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
        std::fs::write(results.join("ready"), &uptime).unwrap();
        println!("guest ready at uptime {uptime}");
        let g = Guest {
            berth: berth.into(),
            seq: Cell::new(0),
        };
        std::fs::create_dir_all("/run/out").unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(results.join("results.jsonl"))
            .unwrap();
        for (scenario, f, checks) in SCENARIOS {
            let t = Instant::now();
            let mut report = Report {
                file: file.try_clone().unwrap(),
                expected: checks,
                reported: BTreeSet::new(),
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f(&g, &mut report);
            }));
            let why = match outcome {
                Ok(()) => format!("scenario {scenario} did not report it"),
                Err(p) => format!(
                    "scenario {scenario} panicked: {}",
                    super::host::panic_text(&*p)
                ),
            };
            report.fail_rest(&why);
            println!("scenario {scenario}: {:.1}s", t.elapsed().as_secs_f64());
        }
        std::fs::write(results.join("done"), "").unwrap();
    }

    /// How a berth command ended.
    #[derive(Debug)]
    struct Ran {
        /// Its exit code; `None` when killed (by a signal or the timeout).
        code: Option<i32>,
        stdout: String,
        stderr: String,
        what: String,
    }

    impl Ran {
        /// `Ok(stdout)` on exit 0, else an error naming the command and its stderr.
        fn ok(self) -> Result<String, String> {
            if self.code == Some(0) {
                Ok(self.stdout)
            } else {
                Err(self.failure())
            }
        }

        fn failure(&self) -> String {
            format!(
                "`{}` exited {:?}: stderr {:?}, stdout {:?}",
                self.what,
                self.code,
                self.stderr.trim_end(),
                self.stdout.trim_end()
            )
        }
    }

    impl Guest {
        /// `berth --root STATE_ROOT ARGS`, stdout and stderr to files (a container's init
        /// inherits them and may outlive the command), killed after [`COMMAND_TIMEOUT`].
        fn berth(&self, args: &[&str]) -> Ran {
            let n = self.seq.get() + 1;
            self.seq.set(n);
            let out = PathBuf::from(format!("/run/out/{n}.out"));
            let err = PathBuf::from(format!("/run/out/{n}.err"));
            let what = format!("berth {}", args.join(" "));
            let mut child = Command::new(&self.berth)
                .args(["--root", STATE_ROOT])
                .args(args)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + COMMAND_TIMEOUT;
            let code = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status.code();
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
            Ran {
                code,
                stdout: read(&out),
                stderr: read(&err),
                what,
            }
        }

        fn ok(&self, args: &[&str]) -> Result<String, String> {
            self.berth(args).ok()
        }

        /// `berth state ID`'s status.
        fn status(&self, id: &str) -> Result<String, String> {
            let state: Value = serde_json::from_str(&self.ok(&["state", id])?)
                .map_err(|e| format!("berth state {id}: {e}"))?;
            Ok(state["status"].as_str().unwrap_or_default().to_owned())
        }

        /// Waits (at most `secs`) for `berth state ID` to say `want`.
        fn wait_status(&self, id: &str, want: &str, secs: u64) -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let now = self.status(id)?;
                if now == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!("{id} is {now:?} after {secs}s, not {want:?}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        /// `create` then `start`.
        fn create_started(&self, bundle: &Bundle, id: &str) -> Result<(), String> {
            self.ok(&["create", "--bundle", &bundle.path(), id])?;
            self.ok(&["start", id])?;
            Ok(())
        }

        /// `delete --force ID`, then nothing of it is left: no state, no cgroup, no init.
        fn delete_leaves_nothing(&self, id: &str, pid: Option<i64>) -> Check {
            self.ok(&["delete", "--force", id])?;
            let mut left = Vec::new();
            let cg = cgroup_dir(id);
            if cg.exists() {
                left.push(format!("cgroup {}", cg.display()));
            }
            let state = Path::new(STATE_ROOT).join(id);
            if state.exists() {
                left.push(format!("state {}", state.display()));
            }
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok())
                && !wait_for(5, || !alive(pid))
            {
                left.push(format!("init pid {pid} alive"));
            }
            if left.is_empty() {
                Ok(format!("{id}: nothing left"))
            } else {
                Err(format!("after delete of {id}: {} left", left.join(", ")))
            }
        }
    }

    /// The cgroup berth makes for `id` with no `linux.cgroupsPath`: `berth/<id>` below the
    /// root (core/src/cgroup.rs `plan_cgroup_setup`).
    fn cgroup_dir(id: &str) -> PathBuf {
        Path::new(CGROUP).join("berth").join(id)
    }

    /// A file of `id`'s cgroup, trimmed.
    fn cg(id: &str, file: &str) -> Result<String, String> {
        let path = cgroup_dir(id).join(file);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("reading {}: {e}", path.display()))
    }

    /// `Ok` when `got` is `want`, else an error naming `what`.
    fn expect(what: &str, got: Result<String, String>, want: &str) -> Check {
        let got = got?;
        if got == want {
            Ok(format!("{what} = {got:?}"))
        } else {
            Err(format!("{what}: got {got:?}, want {want:?}"))
        }
    }

    /// The value of `key` in a `key value` file (`cgroup.events`, `memory.events`).
    fn keyed(text: &str, key: &str) -> Option<u64> {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    /// Waits (at most `secs`) for `cond`.
    fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
        super::e2e_linux_support::wait_until(secs, &mut cond)
    }

    /// Waits for `id`'s `cgroup.events` to say `frozen N`.
    fn wait_frozen(id: &str, frozen: u64) -> Check {
        let mut last = String::new();
        if wait_for(10, || {
            last = cg(id, "cgroup.events").unwrap_or_else(|e| e);
            keyed(&last, "frozen") == Some(frozen)
        }) {
            Ok(format!("cgroup.events: frozen {frozen}"))
        } else {
            Err(format!(
                "cgroup.events of {id} never said frozen {frozen}: {last:?}"
            ))
        }
    }

    /// A busybox bundle in the guest's /tmp.
    struct Bundle {
        rootfs: Rootfs,
    }

    impl std::fmt::Debug for Bundle {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.path())
        }
    }

    impl Bundle {
        /// `berth spec`'s config (devices denied but runc's defaults) running `args`, no
        /// terminal, a writable root; then `edit`.
        fn new(args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
            let rootfs = Rootfs::new();
            let mut v: Value =
                serde_json::from_str(&berth_core::spec::default_config_json(None)).unwrap();
            v["process"]["terminal"] = json!(false);
            v["process"]["args"] = json!(args);
            v["root"]["readonly"] = json!(false);
            edit(&mut v);
            std::fs::write(
                rootfs.bundle().join("config.json"),
                serde_json::to_vec_pretty(&v).unwrap(),
            )
            .unwrap();
            Bundle { rootfs }
        }

        /// A bundle whose `linux.resources` is exactly `resources` (no device rules unless
        /// it has them).
        fn with_resources(args: &[&str], resources: Value) -> Bundle {
            Bundle::new(args, |v| v["linux"]["resources"] = resources)
        }

        fn path(&self) -> String {
            self.rootfs.bundle().to_string_lossy().into_owned()
        }
    }

    /// The limits of the create and lifecycle scenarios, without device rules (cgroup v2
    /// device rules are a separate check).
    fn limits() -> Value {
        json!({
            "memory": {"limit": 64 * 1024 * 1024},
            "pids": {"limit": 32},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "blockIO": {"weight": 500},
        })
    }

    /// The guest really has a unified hierarchy with the controllers the checks need.
    pub(super) fn sanity(_g: &Guest, r: &mut Report) {
        let check = || -> Check {
            let info =
                std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
            let fstype = |l: &str| l.split(" - ").nth(1)?.split(' ').next().map(str::to_owned);
            let v1: Vec<&str> = info
                .lines()
                .filter(|l| fstype(l).as_deref() == Some("cgroup"))
                .collect();
            if !v1.is_empty() {
                return Err(format!("cgroup v1 mounts in the guest: {v1:?}"));
            }
            let at_cgroup = info
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(CGROUP))
                .and_then(fstype);
            if at_cgroup.as_deref() != Some("cgroup2") {
                return Err(format!("{CGROUP} is {at_cgroup:?}, not cgroup2"));
            }
            let controllers = std::fs::read_to_string(format!("{CGROUP}/cgroup.controllers"))
                .map_err(|e| e.to_string())?;
            for c in ["memory", "pids", "cpu", "io"] {
                if !controllers.split_whitespace().any(|w| w == c) {
                    return Err(format!("no {c} controller: {controllers:?}"));
                }
            }
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            Ok(format!(
                "kernel {}, controllers {}",
                release.trim(),
                controllers.trim()
            ))
        };
        r.check("cgroup2_unified", check());
    }

    /// `create` writes every limit to the v2 files before the container starts.
    pub(super) fn limits_at_create(g: &Guest, r: &mut Report) {
        let id = "lim";
        let bundle = Bundle::with_resources(&["echo", "hi"], limits());
        if let Err(e) = g.ok(&["create", "--bundle", &bundle.path(), id]) {
            r.fail_rest(&format!("create failed: {e}"));
            return;
        }
        let mut pid = None;
        r.check(
            "create_state_created",
            (|| {
                let state: Value = serde_json::from_str(&g.ok(&["state", id])?)
                    .map_err(|e| format!("state: {e}"))?;
                let p = state["pid"].as_i64().filter(|p| *p > 0);
                pid = p;
                let procs = cg(id, "cgroup.procs")?;
                match (state["status"].as_str(), p) {
                    (Some("created"), Some(p)) if procs == p.to_string() => {
                        Ok(format!("created, pid {p} alone in cgroup.procs"))
                    }
                    _ => Err(format!("state {state}, cgroup.procs {procs:?}")),
                }
            })(),
        );
        r.check(
            "create_memory_max",
            expect("memory.max", cg(id, "memory.max"), "67108864"),
        );
        r.check(
            "create_pids_max",
            expect("pids.max", cg(id, "pids.max"), "32"),
        );
        r.check(
            "create_cpu_max",
            expect("cpu.max", cg(id, "cpu.max"), "50000 100000"),
        );
        // runc's conversion: 1 + (512 - 2) * 9999 / 262142.
        r.check(
            "create_cpu_weight",
            expect("cpu.weight (shares 512)", cg(id, "cpu.weight"), "20"),
        );
        // runc's conversion: 1 + (500 - 10) * 9999 / 990.
        r.check(
            "create_io_weight",
            expect(
                "io.weight (blkio weight 500)",
                cg(id, "io.weight"),
                "default 4950",
            ),
        );
        r.check(
            "delete_created_leaves_nothing",
            g.delete_leaves_nothing(id, pid),
        );
    }

    /// `berth run` of `echo hi`, and what the container sees of its cgroup.
    pub(super) fn run_echo(g: &Guest, r: &mut Report) {
        let id = "echo";
        let bundle = Bundle::with_resources(
            &[
                "sh",
                "-c",
                "echo hi; cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; \
                 cat /sys/fs/cgroup/pids.max",
            ],
            limits(),
        );
        let ran = g.berth(&["run", "--bundle", &bundle.path(), id]);
        let lines: Vec<&str> = ran.stdout.lines().collect();
        let gone = !cgroup_dir(id).exists();
        r.check(
            "run_echo_hi",
            if ran.code == Some(0) && lines.first() == Some(&"hi") && gone {
                Ok("hi, exit 0, cgroup removed".into())
            } else {
                Err(format!("{} (cgroup removed: {gone})", ran.failure()))
            },
        );
        r.check(
            "cgroupns_view",
            if lines.get(1..) == Some(&["0::/", "67108864", "32"][..]) {
                Ok("0::/ and its own memory.max, pids.max".into())
            } else {
                Err(format!(
                    "want /proc/self/cgroup \"0::/\", memory.max 67108864, pids.max 32 in \
                     the container; {}",
                    ran.failure()
                ))
            },
        );
    }

    /// pause, resume, update and events on a running container with limits.
    pub(super) fn lifecycle(g: &Guest, r: &mut Report) {
        let id = "life";
        let bundle = Bundle::with_resources(&["sleep", "1000"], limits());
        if let Err(e) = g.create_started(&bundle, id) {
            r.fail_rest(&format!("create/start failed: {e}"));
            let _ = g.berth(&["delete", "--force", id]);
            return;
        }
        let pid = g
            .ok(&["state", id])
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["pid"].as_i64());
        r.check(
            "pause_frozen",
            (|| {
                g.ok(&["pause", id])?;
                let frozen = wait_frozen(id, 1)?;
                let status = g.status(id)?;
                if status != "paused" {
                    return Err(format!("{frozen}, but berth state says {status:?}"));
                }
                Ok(format!("{frozen}, state paused"))
            })(),
        );
        r.check(
            "resume_thawed",
            (|| {
                g.ok(&["resume", id])?;
                let thawed = wait_frozen(id, 0)?;
                let status = g.status(id)?;
                if status != "running" {
                    return Err(format!("{thawed}, but berth state says {status:?}"));
                }
                Ok(format!("{thawed}, state running"))
            })(),
        );
        // Whatever pause did, the rest needs a thawed container.
        let _ = std::fs::write(cgroup_dir(id).join("cgroup.freeze"), "0");
        r.check(
            "update_memory",
            g.ok(&["update", "--memory", "128M", id])
                .and_then(|_| expect("memory.max", cg(id, "memory.max"), "134217728")),
        );
        r.check(
            "update_pids",
            g.ok(&["update", "--pids-limit", "10", id])
                .and_then(|_| expect("pids.max", cg(id, "pids.max"), "10")),
        );
        r.check(
            "update_cpu",
            (|| {
                g.ok(&[
                    "update",
                    "--cpu-quota",
                    "20000",
                    "--cpu-period",
                    "50000",
                    "--cpu-shares",
                    "1024",
                    id,
                ])?;
                let max = expect("cpu.max", cg(id, "cpu.max"), "20000 50000")?;
                // 1 + (1024 - 2) * 9999 / 262142.
                let weight = expect("cpu.weight", cg(id, "cpu.weight"), "39")?;
                Ok(format!("{max}, {weight}"))
            })(),
        );
        r.check("events_stats", events_stats(g, id));
        r.check(
            "delete_running_leaves_nothing",
            g.delete_leaves_nothing(id, pid),
        );
    }

    /// `berth events --stats ID`: one stats line read from the v2 files.
    fn events_stats(g: &Guest, id: &str) -> Check {
        let out = g.ok(&["events", "--stats", id])?;
        let v: Value = serde_json::from_str(out.trim())
            .map_err(|e| format!("events --stats: {e}: {out:?}"))?;
        let data = &v["data"];
        let pids = data["pids"]["current"].as_u64().unwrap_or(0);
        let usage = data["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        let limit = data["memory"]["usage"]["limit"].as_u64().unwrap_or(0);
        let current = cg(id, "memory.current")?;
        let max = cg(id, "memory.max")?;
        let want_limit = if max == "max" {
            u64::MAX
        } else {
            max.parse()
                .map_err(|e| format!("memory.max {max:?}: {e}"))?
        };
        if v["type"] == "stats" && pids >= 1 && usage > 0 && limit == want_limit {
            Ok(format!(
                "pids {pids}, memory usage {usage} (memory.current {current}), limit {limit}"
            ))
        } else {
            Err(format!(
                "want type stats, pids.current >= 1, memory usage > 0, limit \
                 {want_limit} (memory.max); got {out:?}"
            ))
        }
    }

    /// A container that allocates past memory.max is OOM-killed.
    pub(super) fn oom(g: &Guest, r: &mut Report) {
        // dd's 64 MiB buffer is filled by the read from /dev/zero: 64 MiB touched at once.
        let dd = [
            "busybox",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
        ];
        let resources = json!({"memory": {"limit": 16 * 1024 * 1024}});
        let bundle = Bundle::with_resources(&dd, resources.clone());
        let ran = g.berth(&["run", "--bundle", &bundle.path(), "oom1"]);
        r.check(
            "oom_kill_exit_137",
            if ran.code == Some(137) {
                Ok("berth run exited 137 (SIGKILL)".into())
            } else {
                Err(format!("want exit 137; {}", ran.failure()))
            },
        );
        let id = "oom2";
        let bundle = Bundle::with_resources(&dd, resources);
        r.check(
            "oom_kill_counted",
            (|| {
                g.create_started(&bundle, id)?;
                g.wait_status(id, "stopped", 60)?;
                let events = cg(id, "memory.events")?;
                let kills = keyed(&events, "oom_kill").unwrap_or(0);
                g.delete_leaves_nothing(id, None)?;
                if kills >= 1 {
                    Ok(format!("memory.events oom_kill {kills}"))
                } else {
                    Err(format!("memory.events has no oom kill: {events:?}"))
                }
            })(),
        );
        let _ = g.berth(&["delete", "--force", id]);
    }

    /// Device rules: without any, a char device made in the container opens; with
    /// `berth spec`'s deny-all (and runc's default allows), /dev/null opens and it does not.
    pub(super) fn devices(g: &Guest, r: &mut Report) {
        // /dev/kmsg (c 1 11) opens for writing without any capability, and is not among
        // runc's default allowed devices; mknod needs CAP_MKNOD.
        let script = "echo x > /dev/null && echo null-ok; \
                      mknod /tmp/kmsg c 1 11 && echo mknod-ok; \
                      echo berth-v2-device-check > /tmp/kmsg && echo kmsg-written; true";
        let with_mknod = |v: &mut Value| {
            for set in ["bounding", "effective", "permitted"] {
                v["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_MKNOD"));
            }
        };
        let bundle = Bundle::new(&["sh", "-c", script], |v| {
            with_mknod(v);
            v["linux"]["resources"] = json!({});
        });
        let ran = g.berth(&["run", "--bundle", &bundle.path(), "dev1"]);
        r.check(
            "devices_control_no_rules",
            if ran.code == Some(0) && ran.stdout == "null-ok\nmknod-ok\nkmsg-written\n" {
                Ok("without rules /dev/null and a new c 1:11 node both open".into())
            } else {
                Err(format!(
                    "without device rules the container should open both: {}",
                    ran.failure()
                ))
            },
        );
        let bundle = Bundle::new(&["sh", "-c", script], with_mknod);
        let ran = g.berth(&["run", "--bundle", &bundle.path(), "dev2"]);
        let eperm = ran.stderr.contains("Operation not permitted");
        r.check(
            "devices_filtered",
            if ran.code == Some(0) && ran.stdout == "null-ok\nmknod-ok\n" && eperm {
                Ok("/dev/null opens, c 1:11 is denied (EPERM)".into())
            } else if ran.stderr.contains("not implemented") {
                Err(format!(
                    "berth has no cgroup v2 device filtering (eBPF) yet, so a config with \
                     device rules cannot even be created on v2; rerun once it lands: {}",
                    ran.failure()
                ))
            } else {
                Err(format!(
                    "want null-ok, mknod-ok, then EPERM opening c 1:11: {}",
                    ran.failure()
                ))
            },
        );
    }

    /// `berth spec`'s own config (with its device rules) through create, pause, resume,
    /// update and delete.
    pub(super) fn default_spec(g: &Guest, r: &mut Report) {
        let id = "spec";
        let bundle = Bundle::new(&["sleep", "1000"], |_| {});
        if let Err(e) = g.create_started(&bundle, id) {
            let hint = if e.contains("not implemented") {
                "berth has no cgroup v2 device filtering (eBPF) yet; rerun once it lands: "
            } else {
                ""
            };
            r.fail_rest(&format!("{hint}create/start failed: {e}"));
            let _ = g.berth(&["delete", "--force", id]);
            return;
        }
        r.check(
            "default_spec_create",
            expect("status", g.status(id), "running"),
        );
        r.check(
            "default_spec_pause_resume",
            (|| {
                g.ok(&["pause", id])?;
                wait_frozen(id, 1)?;
                g.ok(&["resume", id])?;
                wait_frozen(id, 0)?;
                Ok("cgroup.events frozen 1, then 0".into())
            })(),
        );
        r.check("default_spec_events_stats", events_stats(g, id));
        r.check(
            "default_spec_update_delete",
            (|| {
                g.ok(&["update", "--memory", "32M", id])?;
                let max = expect("memory.max", cg(id, "memory.max"), "33554432")?;
                g.delete_leaves_nothing(id, None)?;
                Ok(max)
            })(),
        );
        let _ = g.berth(&["delete", "--force", id]);
    }

    /// After every scenario: no container, no cgroup, no state.
    pub(super) fn final_sweep(g: &Guest, r: &mut Report) {
        r.check(
            "nothing_left",
            (|| {
                let list = g.ok(&["list", "-q"])?;
                let mut left: Vec<String> =
                    list.lines().map(|l| format!("container {l}")).collect();
                for (dir, what) in [
                    (Path::new(CGROUP).join("berth"), "cgroup"),
                    (STATE_ROOT.into(), "state"),
                ] {
                    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        if entry.path().is_dir() {
                            left.push(format!("{what} {}", entry.path().display()));
                        }
                    }
                }
                if left.is_empty() {
                    Ok("nothing left".into())
                } else {
                    Err(format!("left behind: {}", left.join(", ")))
                }
            })(),
        );
    }
}
