//! The container's console: a pty from the container's own devpts, and the master sent to
//! the caller's console socket with SCM_RIGHTS.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use berth_core::plan::{ContainerPath, HostPath, Location};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::error::{Call, SysResult};
use crate::fs::{fd_path, open_loc, open_parent};
use crate::sys;

fn cpath(p: &str) -> SysResult<ContainerPath> {
    ContainerPath::parse(p).map_err(|_| ("container path", Errno::EINVAL))
}

/// Opens a pty in the current root's `/dev/pts`, sets its window size to `size` (rows,
/// columns) when given, binds its peer onto `/dev/console` when `bind_console`, makes the
/// peer this process's controlling terminal and stdio; returns the master.
///
/// The controlling terminal comes last: once this process (a session leader) has it, a
/// failure that closes the master would hang the pty up and kill this process with SIGHUP
/// before it could report the failure.
pub(crate) fn setup_console(
    pivoted: Option<&HostPath>,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> SysResult<OwnedFd> {
    let ptmx = Location::Container(cpath("/dev/pts/ptmx")?);
    let master = open_loc(&ptmx, pivoted, OFlag::O_RDWR | OFlag::O_NOCTTY)?;
    let (peer, number) = sys::pty_peer(&master).call("open pty peer")?;
    if let Some((rows, cols)) = size {
        sys::set_winsize(master.as_fd(), rows, cols).call("ioctl(TIOCSWINSZ)")?;
    }
    if bind_console {
        bind_dev_console(pivoted, number)?;
    }
    match nix::unistd::setsid() {
        // Already a session leader: fine.
        Ok(_) | Err(Errno::EPERM) => {}
        Err(e) => return Err(("setsid", e)),
    }
    sys::set_controlling_tty(peer.as_fd()).call("ioctl(TIOCSCTTY)")?;
    nix::unistd::dup2_stdin(&peer).call("dup2 stdin")?;
    nix::unistd::dup2_stdout(&peer).call("dup2 stdout")?;
    nix::unistd::dup2_stderr(&peer).call("dup2 stderr")?;
    Ok(master)
}

/// Binds pty `number` of the current root's `/dev/pts` onto its `/dev/console` (made as an
/// empty file when missing), as runc does for the container's init.
fn bind_dev_console(pivoted: Option<&HostPath>, number: u32) -> SysResult<()> {
    let console = Location::Container(cpath("/dev/console")?);
    if let Err((_, Errno::ENOENT)) = open_loc(&console, pivoted, OFlag::O_PATH) {
        let (dir, name) = open_parent(&console, pivoted)?;
        nix::fcntl::openat(
            &dir,
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .call("create /dev/console")?;
    }
    let target = open_loc(&console, pivoted, OFlag::O_PATH)?;
    let slave = open_loc(
        &Location::Container(cpath(&format!("/dev/pts/{number}"))?),
        pivoted,
        OFlag::O_PATH,
    )?;
    nix::mount::mount(
        Some(fd_path(&slave).as_str()),
        fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .call("mount pty on /dev/console")?;
    Ok(())
}

/// Sets a terminal's window size (TIOCSWINSZ): `run` with a terminal forwards the user's
/// size to the container's pty master this way.
pub fn set_winsize(tty: impl AsFd, rows: u16, cols: u16) -> Result<(), Errno> {
    sys::set_winsize(tty.as_fd(), rows, cols)
}

/// A terminal's window size (TIOCGWINSZ) as (rows, columns): the size of the user's
/// terminal that a foreground `run` gives the container's pty.
pub fn get_winsize(tty: impl AsFd) -> Result<(u16, u16), Errno> {
    sys::get_winsize(tty.as_fd())
}

/// Connects to the console socket (the runtime, before the clone: init inherits the
/// connection, as the path is out of its reach after its root switch). The fd is
/// close-on-exec (std's sockets are), so it never reaches the container's process.
pub(crate) fn connect(socket: &HostPath) -> SysResult<UnixStream> {
    UnixStream::connect(socket.as_str())
        .map_err(|e| ("connect console socket", crate::ns::io_errno(&e)))
}

/// Sends `fd` over the connected unix socket `socket` (SCM_RIGHTS) with the name runc
/// sends, `/dev/ptmx`.
pub(crate) fn send_fd(fd: &OwnedFd, socket: &OwnedFd) -> SysResult<()> {
    let name = b"/dev/ptmx";
    let iov = [IoSlice::new(name)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .call("sendmsg")?;
    Ok(())
}

/// Receives one fd sent with SCM_RIGHTS on a unix socket (the other end of a console
/// socket): what a caller of `create --console-socket` (or `run` with a terminal) does.
pub fn recv_fd(sock: impl AsFd) -> Result<OwnedFd, Errno> {
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(raw) = c {
            fds.extend(raw);
        }
    }
    let mut owned = sys::owned_from_scm_rights(fds).into_iter();
    owned.next().ok_or(Errno::ENOMSG)
}
