//! seccomp: compile a [`SeccompProfile`] to BPF with libseccomp and load it.
//!
//! Why libseccomp and not a pure-Rust compiler such as `seccompiler`: an OCI profile gives
//! each rule its own action (docker's default profile mixes `allow` and `errno`), names
//! syscalls by name, may list several architectures (`SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`,
//! `SCMP_ARCH_X32`: one filter must check each), and has filter flags (`log`,
//! `spec_allow`). seccompiler has one match action per filter, takes syscall numbers of one
//! architecture only and knows no flags; libseccomp does all of it and is what runc, crun
//! and youki use, so profiles behave the same under berth. The cost is a C library
//! (Debian's `libseccomp-dev` to build, `libseccomp2` to run).
//!
//! Semantics follow runc: a rule whose action is the default action is skipped (libseccomp
//! refuses it); conditions on distinct arguments are ANDed in one rule, while several
//! conditions on the same argument become one rule each (libseccomp cannot AND them); a
//! syscall name this libseccomp does not know is skipped, as runc does, so a profile written
//! for a newer kernel still loads. `no_new_privs` is left to its own step: the filter is
//! loaded without setting it.

use std::str::FromStr;

use berth_core::plan::{SeccompAction, SeccompArg, SeccompCmp, SeccompProfile};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::error::LinuxError;

/// core's action -> libseccomp's; `None` for `notify`, which needs a listener this backend
/// does not drive yet.
fn action(a: SeccompAction) -> Option<ScmpAction> {
    Some(match a {
        SeccompAction::KillThread => ScmpAction::KillThread,
        SeccompAction::KillProcess => ScmpAction::KillProcess,
        SeccompAction::Trap => ScmpAction::Trap,
        SeccompAction::Errno(n) => ScmpAction::Errno(i32::try_from(n).unwrap_or(i32::MAX)),
        SeccompAction::Trace(n) => ScmpAction::Trace(u16::try_from(n).unwrap_or(u16::MAX)),
        SeccompAction::Allow => ScmpAction::Allow,
        SeccompAction::Log => ScmpAction::Log,
        SeccompAction::Notify => return None,
    })
}

fn compare(arg: &SeccompArg) -> ScmpArgCompare {
    let (op, datum) = match arg.op {
        SeccompCmp::Ne => (ScmpCompareOp::NotEqual, arg.value),
        SeccompCmp::Lt => (ScmpCompareOp::Less, arg.value),
        SeccompCmp::Le => (ScmpCompareOp::LessOrEqual, arg.value),
        SeccompCmp::Eq => (ScmpCompareOp::Equal, arg.value),
        SeccompCmp::Ge => (ScmpCompareOp::GreaterEqual, arg.value),
        SeccompCmp::Gt => (ScmpCompareOp::Greater, arg.value),
        // OCI: (arg & value) == valueTwo.
        SeccompCmp::MaskedEq => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two),
    };
    ScmpArgCompare::new(u32::from(arg.index), op, datum)
}

/// Builds the filter without loading it.
pub(crate) fn compile(
    profile: &SeccompProfile,
    text: &str,
) -> Result<ScmpFilterContext, LinuxError> {
    let err = |what: String| LinuxError::Seccomp {
        step: text.to_owned(),
        what,
    };
    let notify = || LinuxError::NotImplemented {
        step: text.to_owned(),
        what: "the seccomp notify action",
    };
    let default = action(profile.default_action).ok_or_else(notify)?;
    let mut f = ScmpFilterContext::new(default).map_err(|e| err(format!("new filter: {e}")))?;
    f.set_ctl_nnp(false)
        .map_err(|e| err(format!("no_new_privs attribute: {e}")))?;
    for arch in &profile.architectures {
        let a =
            ScmpArch::from_str(arch).map_err(|_| err(format!("unknown architecture {arch:?}")))?;
        f.add_arch(a)
            .map_err(|e| err(format!("architecture {arch}: {e}")))?;
    }
    for flag in &profile.flags {
        let set = match flag.as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => f.set_ctl_log(true).map(drop),
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => f.set_ctl_ssb(true).map(drop),
            "SECCOMP_FILTER_FLAG_TSYNC" => f.set_ctl_tsync(true).map(drop),
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => f.set_ctl_waitkill(true).map(drop),
            other => return Err(err(format!("unknown filter flag {other:?}"))),
        };
        set.map_err(|e| err(format!("flag {flag}: {e}")))?;
    }
    for rule in &profile.rules {
        let act = action(rule.action).ok_or_else(notify)?;
        if act == default {
            continue;
        }
        let mut indexes: Vec<u8> = rule.args.iter().map(|a| a.index).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        let groups: Vec<Vec<ScmpArgCompare>> = if repeated {
            rule.args.iter().map(|a| vec![compare(a)]).collect()
        } else {
            vec![rule.args.iter().map(compare).collect()]
        };
        for name in &rule.names {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            for conds in &groups {
                f.add_rule_conditional(act, sc, conds)
                    .map_err(|e| err(format!("rule for {name}: {e}")))?;
            }
        }
    }
    Ok(f)
}

/// Compiles and loads `profile` for this process.
pub(crate) fn load(profile: &SeccompProfile, text: &str) -> Result<(), LinuxError> {
    let f = compile(profile, text)?;
    f.load().map_err(|e| LinuxError::Seccomp {
        step: text.to_owned(),
        what: format!("loading the filter: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::plan::SeccompRule;

    fn profile(rules: Vec<SeccompRule>) -> SeccompProfile {
        SeccompProfile {
            default_action: SeccompAction::Allow,
            architectures: vec!["SCMP_ARCH_X86_64".into(), "SCMP_ARCH_X86".into()],
            flags: vec!["SECCOMP_FILTER_FLAG_SPEC_ALLOW".into()],
            rules,
            listener_path: None,
        }
    }

    #[test]
    fn a_profile_with_mixed_actions_and_args_compiles() {
        let p = profile(vec![
            SeccompRule {
                names: vec!["mkdir".into(), "mkdirat".into(), "no_such_syscall_x".into()],
                action: SeccompAction::Errno(1),
                args: vec![],
            },
            SeccompRule {
                names: vec!["personality".into()],
                action: SeccompAction::Errno(38),
                args: vec![
                    SeccompArg {
                        index: 0,
                        value: 8,
                        value_two: 0,
                        op: SeccompCmp::Eq,
                    },
                    SeccompArg {
                        index: 0,
                        value: 0xffff_ffff,
                        value_two: 0,
                        op: SeccompCmp::MaskedEq,
                    },
                ],
            },
            SeccompRule {
                names: vec!["getpid".into()],
                action: SeccompAction::Allow,
                args: vec![],
            },
        ]);
        let f = compile(&p, "seccomp").unwrap();
        let mut out = tempfile::tempfile().unwrap();
        f.export_bpf(&out).unwrap();
        let mut bpf = Vec::new();
        std::io::Seek::rewind(&mut out).unwrap();
        std::io::Read::read_to_end(&mut out, &mut bpf).unwrap();
        // One sock_filter is 8 bytes; two architectures and three rules need a few dozen.
        assert!(bpf.len() % 8 == 0 && bpf.len() / 8 > 20, "{}", bpf.len());
    }

    #[test]
    fn bad_profiles_are_errors_naming_the_value() {
        let mut p = profile(vec![]);
        p.architectures = vec!["SCMP_ARCH_NOPE".into()];
        let e = compile(&p, "step").unwrap_err().to_string();
        assert_eq!(e, "step: unknown architecture \"SCMP_ARCH_NOPE\"");
        let mut p = profile(vec![]);
        p.flags = vec!["SECCOMP_FILTER_FLAG_NOPE".into()];
        assert!(compile(&p, "s").unwrap_err().to_string().contains("NOPE"));
        let mut p = profile(vec![]);
        p.default_action = SeccompAction::Notify;
        assert!(matches!(
            compile(&p, "s").unwrap_err(),
            LinuxError::NotImplemented { .. }
        ));
    }
}
