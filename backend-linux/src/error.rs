//! What a failed step reports: the step's dry-run text, the call that failed, and why.
//!
//! Rule: the message names the step and the call; the cause (an errno, an I/O error) is the
//! `#[source]`, never repeated in the message, so `{err:#}` prints each fact once.

pub use nix::errno::Errno;

/// A step the Linux backend could not carry out.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// A system call failed.
    #[error("{step}: {call} failed")]
    Sys {
        /// The step's text, as `--dry-run` prints it.
        step: String,
        /// The call, as the man page names it (`mount`, `openat2 /proc/sys/net/x`).
        call: &'static str,
        /// The kernel's answer.
        #[source]
        errno: Errno,
    },
    /// A file operation of the standard library failed.
    #[error("{step}: {what} failed")]
    Io {
        /// The step's text.
        step: String,
        /// What was being done (`write state.json`).
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A step of the init process failed; init undid its own steps and exited.
    #[error("{step}: {detail}")]
    InInit {
        /// The text of init's failing step.
        step: String,
        /// What failed, as init reported it (`mount failed`).
        detail: String,
        /// The errno init reported, if the failure had one.
        #[source]
        errno: Option<Errno>,
    },
    /// The init process exited (or was killed) where it should have answered.
    #[error("{step}: the init process exited unexpectedly")]
    InitExited {
        /// The step that was waiting for init.
        step: String,
    },
    /// The init process sent a message that does not fit the plan.
    #[error("{step}: unexpected message from init ({got})")]
    Protocol {
        /// The step that was waiting.
        step: String,
        /// What came instead.
        got: String,
    },
    /// A handle the step needs is not bound in the process that applies it.
    #[error("{step}: ${handle} is not bound in this process")]
    Unbound {
        /// The step's text.
        step: String,
        /// The handle's name.
        handle: String,
    },
    /// `clone` was asked for while the process has more than one thread: the child would be
    /// a copy of one thread of a process whose other threads may hold locks.
    #[error("{step}: refusing to clone a process with {threads} threads")]
    Threaded {
        /// The spawn step.
        step: String,
        /// How many threads the process has.
        threads: usize,
    },
    /// A hook exited with a failure status.
    #[error("{step}: the hook {status}")]
    HookFailed {
        /// The hook step.
        step: String,
        /// How it ended (`exited with status 1`, `was killed by signal 9`).
        status: String,
    },
    /// A hook ran past its timeout and was killed.
    #[error("{step}: the hook timed out after {seconds}s")]
    HookTimeout {
        /// The hook step.
        step: String,
        /// The timeout.
        seconds: u32,
    },
    /// `exec` found no executable for the command.
    #[error("{step}: exec: {name:?}: executable file not found in $PATH")]
    NotFound {
        /// The exec step.
        step: String,
        /// argv\[0\].
        name: String,
    },
    /// The program of the container's process is not there, or not an executable file.
    #[error("{step}: exec: {name:?}")]
    NoProgram {
        /// The exec step.
        step: String,
        /// The path looked at.
        name: String,
        /// Why (`ENOENT`, `EACCES`).
        #[source]
        errno: Errno,
    },
    /// A value in the step cannot be passed to the kernel (a NUL byte in a string).
    #[error("{step}: {what} contains a NUL byte")]
    Nul {
        /// The step's text.
        step: String,
        /// Which value.
        what: &'static str,
    },
    /// `start` found nobody at the start barrier: init is gone or already started.
    #[error("{step}: the init process is not waiting at the start barrier")]
    NotAtBarrier {
        /// The signal step.
        step: String,
    },
    /// A seccomp profile could not be compiled.
    #[error("{step}: {what}")]
    Seccomp {
        /// The seccomp step.
        step: String,
        /// What is wrong with the profile (`unknown syscall "foo"`).
        what: String,
    },
    /// The capabilities asked for include some the runtime does not hold itself, so the
    /// kernel refuses the capset (a bare `EPERM` otherwise).
    #[error(
        "{step}: capset failed: {missing} not in berth's own permitted set (a runtime cannot grant a capability it lacks)"
    )]
    CapsNotHeld {
        /// The cap-set step.
        step: String,
        /// The capabilities missing, as the plan writes them (`sys_resource`).
        missing: String,
    },
    /// Device rules that cannot be compiled into a cgroup device program.
    #[error("{step}: cannot compile the device rules")]
    DeviceRules {
        /// The cgroup-devices step.
        step: String,
        /// What is wrong with the rules.
        #[source]
        source: berth_core::bpf::BpfError,
    },
    /// The kernel refused to load an eBPF program.
    #[error("{step}: bpf(BPF_PROG_LOAD) failed; the verifier's log:\n{log}")]
    BpfLoad {
        /// The step's text.
        step: String,
        /// The end of the verifier's log.
        log: String,
        /// The kernel's answer.
        #[source]
        errno: Errno,
    },
    /// The op is not implemented by this backend yet.
    #[error("{step}: {what} is not implemented yet")]
    NotImplemented {
        /// The step's text.
        step: String,
        /// What is missing.
        what: &'static str,
    },
    /// `adopt` found no live process under the recorded pid (gone, or a zombie).
    #[error("{step}: process {pid} is gone")]
    ProcessGone {
        /// The adopt step.
        step: String,
        /// The recorded pid.
        pid: u32,
    },
    /// `adopt` found another process under the recorded pid: the pid was reused.
    #[error(
        "{step}: process {pid} is not the recorded one (it started at {found}, the record says {recorded})"
    )]
    NotThatProcess {
        /// The adopt step.
        step: String,
        /// The recorded pid.
        pid: u32,
        /// The recorded start time.
        recorded: u64,
        /// The start time of the process under that pid now.
        found: u64,
    },
    /// Test-only fault injection made this step fail.
    #[error("{step}: injected fault")]
    Injected {
        /// The step's text.
        step: String,
    },
}

impl LinuxError {
    /// The step text this error names.
    pub fn step(&self) -> &str {
        match self {
            LinuxError::Sys { step, .. }
            | LinuxError::Io { step, .. }
            | LinuxError::InInit { step, .. }
            | LinuxError::InitExited { step }
            | LinuxError::Protocol { step, .. }
            | LinuxError::Unbound { step, .. }
            | LinuxError::Threaded { step, .. }
            | LinuxError::HookFailed { step, .. }
            | LinuxError::HookTimeout { step, .. }
            | LinuxError::NotFound { step, .. }
            | LinuxError::NoProgram { step, .. }
            | LinuxError::Nul { step, .. }
            | LinuxError::NotAtBarrier { step }
            | LinuxError::Seccomp { step, .. }
            | LinuxError::CapsNotHeld { step, .. }
            | LinuxError::DeviceRules { step, .. }
            | LinuxError::BpfLoad { step, .. }
            | LinuxError::NotImplemented { step, .. }
            | LinuxError::ProcessGone { step, .. }
            | LinuxError::NotThatProcess { step, .. }
            | LinuxError::Injected { step } => step,
        }
    }

    /// The errno behind the error, if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            LinuxError::Sys { errno, .. }
            | LinuxError::BpfLoad { errno, .. }
            | LinuxError::NoProgram { errno, .. } => Some(*errno),
            LinuxError::InInit { errno, .. } => *errno,
            LinuxError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// The message without its leading `STEP: `, as init sends it to the runtime.
    pub(crate) fn detail(&self) -> String {
        let text = self.to_string();
        let prefix = format!("{}: ", self.step());
        match text.strip_prefix(&prefix) {
            Some(rest) => rest.to_owned(),
            None => text,
        }
    }
}

/// Shorthand for the result of one syscall wrapper, before the step is named.
pub(crate) type SysResult<T> = Result<T, (&'static str, Errno)>;

/// Names the step of a syscall failure.
pub(crate) trait AtStep<T> {
    /// Turns `(call, errno)` into [`LinuxError::Sys`] naming `step`.
    fn at(self, step: &str) -> Result<T, LinuxError>;
}

impl<T> AtStep<T> for SysResult<T> {
    fn at(self, step: &str) -> Result<T, LinuxError> {
        self.map_err(|(call, errno)| LinuxError::Sys {
            step: step.to_owned(),
            call,
            errno,
        })
    }
}

/// Attaches a call name to a nix result.
pub(crate) trait Call<T> {
    /// `Err(errno)` becomes `Err((call, errno))`.
    fn call(self, call: &'static str) -> SysResult<T>;
}

impl<T> Call<T> for nix::Result<T> {
    fn call(self, call: &'static str) -> SysResult<T> {
        self.map_err(|e| (call, e))
    }
}
