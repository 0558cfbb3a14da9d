//! What a failed network step reports: the step's dry-run text, the call that failed, and
//! why.
//!
//! Same rule as [`crate::error`]: the message names the step and the call; the cause (an
//! errno, rtnetlink's error, `nft`'s output) is the `#[source]` or a field, never repeated.

use nix::errno::Errno;

/// A network step [`super::NetBackend`] could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A system call failed (setns, unshare, mount, open of a namespace file).
    #[error("{step}: {call} failed")]
    Sys {
        /// The step's text, as `--dry-run` prints it.
        step: String,
        /// The call (`mount --bind`, `setns`).
        call: &'static str,
        /// The kernel's answer.
        #[source]
        errno: Errno,
    },
    /// The kernel refused a netlink request.
    #[error("{step}: {call} failed")]
    Netlink {
        /// The step's text.
        step: String,
        /// The request (`RTM_NEWLINK`).
        call: &'static str,
        /// The kernel's answer.
        #[source]
        errno: Errno,
    },
    /// A netlink request failed without an answer from the kernel (a malformed reply, a
    /// closed connection).
    #[error("{step}: {call} failed")]
    NetlinkProto {
        /// The step's text.
        step: String,
        /// The request.
        call: &'static str,
        /// rtnetlink's error.
        #[source]
        source: rtnetlink::Error,
    },
    /// No link of that name exists in the namespace.
    #[error("{step}: no link named {name:?}")]
    NoLink {
        /// The step's text.
        step: String,
        /// The name looked up.
        name: String,
    },
    /// A MAC address in the plan is not six hex bytes joined by colons.
    #[error("{step}: {mac:?} is not a MAC address")]
    BadMac {
        /// The step's text.
        step: String,
        /// The text found.
        mac: String,
    },
    /// A route's destination and gateway are of different address families.
    #[error("{step}: the route mixes IPv4 and IPv6 ({detail})")]
    BadRoute {
        /// The step's text.
        step: String,
        /// rtnetlink's complaint.
        detail: String,
    },
    /// A handle the step needs is not bound (by an earlier step or [`super::NetBackend::bind_netns_fd`]).
    #[error("{step}: ${handle} is not bound")]
    Unbound {
        /// The step's text.
        step: String,
        /// The handle's name.
        handle: String,
    },
    /// Running `nft` failed (not installed, killed) or its output could not be read.
    #[error("{step}: {what} failed")]
    Io {
        /// The step's text.
        step: String,
        /// What was being done (`run nft -f -`).
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `nft` exited with a failure status.
    #[error("{step}: nft {args} exited with {status}: {stderr}")]
    Nft {
        /// The step's text.
        step: String,
        /// Its arguments.
        args: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// A value in the step would break out of the `nft` script it is written into (a quote,
    /// a newline, a character `nft` names do not take).
    #[error("{step}: {what} {value:?} cannot be written into an nft script")]
    BadFwValue {
        /// The step's text.
        step: String,
        /// Which value (`chain name`, `tag`).
        what: &'static str,
        /// The value.
        value: String,
    },
    /// `fw add` found a rule of the chain with the same tag (tags are unique in a chain).
    #[error("{step}: a rule tagged {tag:?} is already in the chain")]
    FwTagTaken {
        /// The step's text.
        step: String,
        /// The tag.
        tag: String,
    },
    /// `fw del` found no rule with the tag in the chain.
    #[error("{step}: no rule tagged {tag:?} in the chain")]
    FwNoRule {
        /// The step's text.
        step: String,
        /// The tag.
        tag: String,
    },
    /// `fw delete-table` found rules still in berth's table.
    #[error("{step}: berth's table still has {rules} rule(s)")]
    FwTableInUse {
        /// The step's text.
        step: String,
        /// How many.
        rules: usize,
    },
    /// A sysctl path that is not a file under `/proc/sys/`.
    #[error("{step}: {path:?} is not under /proc/sys/")]
    BadSysctl {
        /// The step's text.
        step: String,
        /// The path.
        path: String,
    },
    /// The op is not a network op: [`super::NetBackend`] carries out network ops only.
    #[error("{step}: not a network op (NetBackend carries out network ops only)")]
    NotNetwork {
        /// The step's text.
        step: String,
    },
    /// Test-only fault injection made this step fail.
    #[error("{step}: injected fault")]
    Injected {
        /// The step's text.
        step: String,
    },
}

impl NetError {
    /// The errno behind the error, if the kernel gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetError::Sys { errno, .. } | NetError::Netlink { errno, .. } => Some(*errno),
            NetError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// An rtnetlink error of `call` at `step`: the kernel's errno when it answered one.
    pub(crate) fn netlink(step: &str, call: &'static str, e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(ref m) => match m.code {
                // The kernel answers a negative errno.
                Some(code) => NetError::Netlink {
                    step: step.to_owned(),
                    call,
                    errno: Errno::from_raw(-code.get()),
                },
                None => NetError::NetlinkProto {
                    step: step.to_owned(),
                    call,
                    source: e,
                },
            },
            other => NetError::NetlinkProto {
                step: step.to_owned(),
                call,
                source: other,
            },
        }
    }
}

/// A failure below the step level, before the step is named: a call and its errno, or an
/// rtnetlink error.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A syscall.
    Sys(&'static str, Errno),
    /// A netlink request.
    Netlink(&'static str, rtnetlink::Error),
    /// A link looked up by name is not there.
    NoLink(String),
    /// A bad MAC address.
    BadMac(String),
    /// A route of mixed families.
    BadRoute(String),
}

impl Fail {
    /// Names the step.
    pub(crate) fn at(self, step: &str) -> NetError {
        let step = step.to_owned();
        match self {
            Fail::Sys(call, errno) => NetError::Sys { step, call, errno },
            Fail::Netlink(call, e) => NetError::netlink(&step, call, e),
            Fail::NoLink(name) => NetError::NoLink { step, name },
            Fail::BadMac(mac) => NetError::BadMac { step, mac },
            Fail::BadRoute(detail) => NetError::BadRoute { step, detail },
        }
    }
}

/// Attaches a call name to a nix result.
pub(crate) trait SysCall<T> {
    /// `Err(errno)` becomes [`Fail::Sys`].
    fn sys(self, call: &'static str) -> Result<T, Fail>;
}

impl<T> SysCall<T> for nix::Result<T> {
    fn sys(self, call: &'static str) -> Result<T, Fail> {
        self.map_err(|e| Fail::Sys(call, e))
    }
}

/// Attaches a request name to an rtnetlink result.
pub(crate) trait NlCall<T> {
    /// `Err(e)` becomes [`Fail::Netlink`].
    fn nl(self, call: &'static str) -> Result<T, Fail>;
}

impl<T> NlCall<T> for Result<T, rtnetlink::Error> {
    fn nl(self, call: &'static str) -> Result<T, Fail> {
        self.map_err(|e| Fail::Netlink(call, e))
    }
}
