//! OCI hooks: run the executable with the container's state JSON on stdin, within its
//! timeout.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_core::plan::{HookKind, HookSpec, HostPath, Op, Plan};

use crate::error::LinuxError;

/// The state a hook reads on stdin: the id and bundle come from the plan's state writes,
/// else (the plans of `start` and `delete` write no state) from `container`. A poststop
/// hook gets no pid, as runc gives it none: the process is gone, the pid may be another's.
fn state_json(
    plan: &Plan,
    kind: HookKind,
    pid: i32,
    container: Option<&(String, HostPath)>,
) -> String {
    let (id, bundle) = plan
        .steps
        .iter()
        .find_map(|s| match &s.op {
            Op::StateWrite { id, bundle, .. } => Some((id.clone(), bundle.as_str().to_owned())),
            _ => None,
        })
        .or_else(|| container.map(|(id, bundle)| (id.clone(), bundle.as_str().to_owned())))
        .unwrap_or_default();
    let status = match kind {
        HookKind::Prestart | HookKind::CreateRuntime | HookKind::CreateContainer => "creating",
        HookKind::StartContainer => "created",
        HookKind::Poststart => "running",
        HookKind::Poststop => "stopped",
    };
    let mut state = serde_json::json!({
        "ociVersion": "1.2.1",
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
    });
    if kind == HookKind::Poststop
        && let Some(map) = state.as_object_mut()
    {
        map.remove("pid");
    }
    state.to_string()
}

/// Runs one hook; a non-zero exit, a signal or the timeout is an error.
pub(crate) fn run(
    plan: &Plan,
    kind: HookKind,
    hook: &HookSpec,
    pid: i32,
    container: Option<&(String, HostPath)>,
    text: &str,
) -> Result<(), LinuxError> {
    let io = |what, source| LinuxError::Io {
        step: text.to_owned(),
        what,
        source,
    };
    let mut cmd = Command::new(&hook.path);
    if let Some(arg0) = hook.args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(hook.args.iter().skip(1))
        .env_clear()
        .envs(hook.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| io("spawn hook", e))?;
    let state = state_json(plan, kind, pid, container);
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE).
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
    let status = loop {
        match child.try_wait().map_err(|e| io("wait for hook", e))? {
            Some(status) => break status,
            None => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(LinuxError::HookTimeout {
                        step: text.to_owned(),
                        seconds: hook.timeout.unwrap_or(0),
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "failed".to_owned(),
    };
    Err(LinuxError::HookFailed {
        step: text.to_owned(),
        status,
    })
}
