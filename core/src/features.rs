//! The runtime-spec Features document (`berth features`), as `runc features` prints it.
//!
//! Pure: everything comes from core's own tables (the mount options the parser knows,
//! [`CAPABILITY_NAMES`], [`Namespace::ALL`]) and the runtime's version, which the caller
//! passes in. What berth does not do is listed as disabled (AppArmor, SELinux, systemd
//! cgroups), so a caller never relies on it.

use serde_json::{Value, json};

use crate::mountopt::OPTION_WORDS;
use crate::plan::{CAPABILITY_NAMES, Namespace};

/// The oldest runtime-spec version a config may name.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// The hooks berth runs, in the spec's order.
const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Seccomp actions berth's filter compiler takes.
const SECCOMP_ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Seccomp argument operators.
const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Seccomp architectures (libseccomp's).
const SECCOMP_ARCHS: [&str; 23] = [
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// The runtime-spec name of a namespace kind (`mount`, `network`), as configs spell it.
fn spec_name(ns: Namespace) -> &'static str {
    match ns {
        Namespace::User => "user",
        Namespace::Pid => "pid",
        Namespace::Mount => "mount",
        Namespace::Network => "network",
        Namespace::Uts => "uts",
        Namespace::Ipc => "ipc",
        Namespace::Cgroup => "cgroup",
        Namespace::Time => "time",
    }
}

/// The newest runtime-spec version berth implements (the one `berth spec` writes).
pub fn oci_version_max() -> String {
    serde_json::from_str::<Value>(&crate::spec::default_config_json(None))
        .ok()
        .and_then(|v| v["ociVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| OCI_VERSION_MIN.to_owned())
}

/// The Features document of berth `version`, in runc's field order.
pub fn features(version: &str) -> Value {
    let mut namespaces: Vec<&str> = Namespace::ALL.iter().map(|n| spec_name(*n)).collect();
    namespaces.sort_unstable();
    let mut mount_options: Vec<&str> = OPTION_WORDS.to_vec();
    mount_options.sort_unstable();
    let capabilities: Vec<&str> = CAPABILITY_NAMES.to_vec();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": oci_version_max(),
        "hooks": HOOKS,
        "mountOptions": mount_options,
        "linux": {
            "namespaces": namespaces,
            "capabilities": capabilities,
            "cgroup": {
                "v1": true,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": true
            },
            "seccomp": {
                "enabled": true,
                "actions": SECCOMP_ACTIONS,
                "operators": SECCOMP_OPERATORS,
                "archs": SECCOMP_ARCHS
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false}
        },
        "annotations": {
            "io.github.berth.version": version,
            "io.github.berth.seccomp.backend": "libseccomp"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountopt::parse_mount_options;

    #[test]
    fn features_lists_what_core_knows() {
        let f = features("9.9.9");
        assert_eq!(f["ociVersionMin"], "1.0.0");
        assert_eq!(f["ociVersionMax"], oci_version_max());
        assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1.2."));
        assert_eq!(f["hooks"].as_array().unwrap().len(), 6);
        assert_eq!(
            f["linux"]["namespaces"],
            json!([
                "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"
            ])
        );
        let caps = f["linux"]["capabilities"].as_array().unwrap();
        assert_eq!(caps.len(), CAPABILITY_NAMES.len());
        assert_eq!(caps[0], "CAP_CHOWN");
        assert_eq!(f["linux"]["cgroup"]["systemd"], false);
        assert_eq!(f["linux"]["cgroup"]["v1"], true);
        assert_eq!(f["linux"]["seccomp"]["enabled"], true);
        assert!(
            f["linux"]["seccomp"]["archs"]
                .as_array()
                .unwrap()
                .contains(&json!("SCMP_ARCH_X86_64"))
        );
        assert_eq!(f["linux"]["apparmor"]["enabled"], false);
        assert_eq!(f["linux"]["selinux"]["enabled"], false);
        assert_eq!(f["annotations"]["io.github.berth.version"], "9.9.9");
    }

    #[test]
    fn every_listed_mount_option_parses() {
        let f = features("0");
        let opts = f["mountOptions"].as_array().unwrap();
        assert!(opts.contains(&json!("rbind")) && opts.contains(&json!("nosymfollow")));
        for o in opts {
            let o = o.as_str().unwrap();
            let parsed = parse_mount_options(&[o.to_owned()]).unwrap();
            assert!(parsed.data.is_empty(), "{o} is not data");
        }
    }
}
