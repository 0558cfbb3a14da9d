//! Ops on files and directories: the state directory, the pid file, `mkdir -p`, mount
//! points, symlinks, device nodes, chown, chdir, and the console.

use berth_core::plan::{DeviceKind, HostPath, Location, MountFlags, Namespace, Propagation};

use crate::FakeError;
use crate::fs::{Mk, Spot, mount_at};
use crate::model::{Fs, FsKind, MountEntry, Node, NodeKind};
use crate::path;
use crate::world::{Made, MadeNode, World, cap};

impl World {
    /// Resolves a location whose last component may be missing but whose parent must
    /// exist; returns the spot and the canonical path.
    fn parent_exists(
        &mut self,
        op: &'static str,
        actor: u32,
        loc: &Location,
        follow_last: bool,
    ) -> Result<(Spot, String), FakeError> {
        let spot = self.spot(actor, loc)?;
        let p = match self.resolve(&spot, follow_last) {
            Ok(p) => p,
            Err(FakeError::Missing { path, .. }) => return Err(FakeError::Missing { op, path }),
            Err(e) => return Err(e),
        };
        Ok((spot, p))
    }

    /// Writes a whole file (made or replaced), as a temp-and-rename would.
    fn write_file(
        &mut self,
        op: &'static str,
        actor: u32,
        p: &HostPath,
        content: &str,
        mode: u32,
    ) -> Result<(), FakeError> {
        let (spot, t) = self.parent_exists(op, actor, &Location::Host(p.clone()), true)?;
        match self.node(spot.mns, &t) {
            Some((_, n)) if n.is_dir() => {
                return Err(FakeError::IsDir {
                    op,
                    path: p.to_string(),
                });
            }
            Some(_) => {
                if mount_at(self.mounts(spot.mns), &t).is_some() {
                    return Err(FakeError::Busy {
                        op,
                        path: p.to_string(),
                        why: "it is a mount point".to_owned(),
                    });
                }
                self.remove_node(op, spot.mns, &t, false, None)?;
            }
            None => {}
        }
        self.create(
            op,
            actor,
            spot.mns,
            &t,
            NodeKind::File(content.to_owned()),
            mode,
        )?;
        Ok(())
    }

    /// `state-create`: the directory must be new, its parent must exist.
    pub(crate) fn state_create(&mut self, actor: u32, dir: &HostPath) -> Result<(), FakeError> {
        let op = "state-create";
        let (spot, t) = self.parent_exists(op, actor, &Location::Host(dir.clone()), false)?;
        if self.node(spot.mns, &t).is_some() {
            return Err(FakeError::StateExists {
                dir: dir.to_string(),
            });
        }
        self.create(op, actor, spot.mns, &t, NodeKind::Dir, 0o711)?;
        Ok(())
    }

    /// `state-remove`: the directory and everything in it.
    pub(crate) fn state_remove(&mut self, actor: u32, dir: &HostPath) -> Result<(), FakeError> {
        let op = "state-remove";
        let (spot, t) = self.parent_exists(op, actor, &Location::Host(dir.clone()), false)?;
        let Some(((fs, fp), node)) = self.node(spot.mns, &t) else {
            return Err(FakeError::Missing {
                op,
                path: dir.to_string(),
            });
        };
        if !node.is_dir() {
            return Err(FakeError::NotDir {
                op,
                path: dir.to_string(),
            });
        }
        if self
            .mounts(spot.mns)
            .iter()
            .any(|e| path::under(&e.target, &t))
        {
            return Err(FakeError::Busy {
                op,
                path: dir.to_string(),
                why: "a mount is inside it".to_owned(),
            });
        }
        if let Some(e) = self.covering_entry(spot.mns, &t)
            && e.flags.contains(berth_core::plan::MountFlag::Ro)
        {
            return Err(FakeError::ReadOnly {
                op,
                path: dir.to_string(),
            });
        }
        if let Some(fs) = self.m.fs_mut(fs) {
            let inside: Vec<String> = fs.children(&fp).map(|(k, _)| k.clone()).collect();
            for k in inside {
                fs.nodes.remove(&k);
            }
            fs.nodes.remove(&fp);
        }
        Ok(())
    }

    /// `state-write`: `DIR/state.json`.
    pub(crate) fn state_write(
        &mut self,
        actor: u32,
        dir: &HostPath,
        json: &str,
    ) -> Result<(), FakeError> {
        let op = "state-write";
        let (spot, t) = self.parent_exists(op, actor, &Location::Host(dir.clone()), true)?;
        match self.node(spot.mns, &t) {
            Some((_, n)) if n.is_dir() => {}
            Some(_) => {
                return Err(FakeError::NotDir {
                    op,
                    path: dir.to_string(),
                });
            }
            None => {
                return Err(FakeError::Missing {
                    op,
                    path: dir.to_string(),
                });
            }
        }
        self.write_file(op, actor, &dir.join("state.json"), json, 0o600)
    }

    /// `write-pid-file`: the bare pid.
    pub(crate) fn write_pid_file(
        &mut self,
        actor: u32,
        p: &HostPath,
        pid: u32,
    ) -> Result<(), FakeError> {
        self.write_file("write-pid-file", actor, p, &pid.to_string(), 0o644)
    }

    /// `unlink`: a file, symlink or device (not a directory).
    pub(crate) fn unlink(&mut self, actor: u32, loc: &Location) -> Result<(), FakeError> {
        let op = "unlink";
        // A missing file (or parent) is skipped: it was made inside a filesystem only a
        // dying mount namespace has (core's `undo` rule).
        let (spot, t) = match self.parent_exists(op, actor, loc, false) {
            Ok(found) => found,
            Err(FakeError::Missing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.node(spot.mns, &t).is_none() {
            return Ok(());
        }
        self.remove_node(op, spot.mns, &t, false, None)
            .map_err(|e| match e {
                FakeError::IsDir { op, .. } => FakeError::IsDir {
                    op,
                    path: loc.to_string(),
                },
                other => other,
            })
    }

    /// `mkdir -p`: what it made.
    pub(crate) fn mkdir_all(
        &mut self,
        actor: u32,
        loc: &Location,
        mode: u32,
    ) -> Result<Made, FakeError> {
        let op = "mkdir -p";
        let spot = self.spot(actor, loc)?;
        let mut made = Vec::new();
        let mk = Mk {
            op,
            mode,
            last: true,
        };
        let t = self.walk(&spot, true, Some((mk, actor)), &mut made)?;
        match self.node(spot.mns, &t) {
            Some((_, n)) if n.is_dir() => Ok(Made::Nodes(made)),
            _ => Err(FakeError::NotDir {
                op,
                path: loc.to_string(),
            }),
        }
    }

    /// A mount point like `source`: a directory if the source is one, else an empty file.
    pub(crate) fn mkmountpoint(
        &mut self,
        actor: u32,
        loc: &Location,
        source: Option<&HostPath>,
    ) -> Result<Made, FakeError> {
        let op = "mkmountpoint";
        let spot = self.spot(actor, loc)?;
        let mut made = Vec::new();
        let mk = Mk {
            op,
            mode: 0o755,
            last: false,
        };
        let t = self.walk(&spot, true, Some((mk, actor)), &mut made)?;
        if self.node(spot.mns, &t).is_none() {
            let dir = match source {
                None => true,
                Some(s) => {
                    let s_spot = self.spot_host(actor, s)?;
                    match self.resolve(&s_spot, true) {
                        Ok(sp) => self.node(s_spot.mns, &sp).is_some_and(|(_, n)| n.is_dir()),
                        Err(_) => false,
                    }
                }
            };
            let kind = if dir {
                NodeKind::Dir
            } else {
                NodeKind::File(String::new())
            };
            made.push(self.create(op, actor, spot.mns, &t, kind, 0o755)?);
        }
        Ok(Made::Nodes(made))
    }

    /// Removes what a `mkdir -p`-like op made, deepest first, by the paths the actor sees
    /// them at now (so a read-only remount or a hiding mount since is an error).
    pub(crate) fn remove_made(&mut self, actor: u32, nodes: &[MadeNode]) -> Result<(), FakeError> {
        let op = "remove-made";
        let mns = self.ns_of(actor, Namespace::Mount)?;
        for n in nodes.iter().rev() {
            // A node this namespace does not show (made inside a filesystem only another,
            // dying, mount namespace has) goes with that namespace: core's `undo` rule.
            let Some(p) = self.made_path(mns, n) else {
                continue;
            };
            if self.node(mns, &p).is_none_or(|(id, _)| id != n.id) {
                continue;
            }
            self.remove_node(op, mns, &p, true, Some(&n.id))?;
        }
        Ok(())
    }

    /// `ln -s`.
    pub(crate) fn symlink(
        &mut self,
        actor: u32,
        target: &str,
        link: &Location,
    ) -> Result<(), FakeError> {
        let op = "ln -s";
        let (spot, t) = self.parent_exists(op, actor, link, false)?;
        if self.node(spot.mns, &t).is_some() {
            return Err(FakeError::Exists {
                op,
                path: link.to_string(),
            });
        }
        self.create(
            op,
            actor,
            spot.mns,
            &t,
            NodeKind::Symlink(target.to_owned()),
            0o777,
        )?;
        Ok(())
    }

    /// `mknod` then chown.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mknod(
        &mut self,
        actor: u32,
        loc: &Location,
        kind: DeviceKind,
        major: u64,
        minor: u64,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), FakeError> {
        let op = "mknod";
        let (spot, t) = self.parent_exists(op, actor, loc, false)?;
        if self.node(spot.mns, &t).is_some() {
            return Err(FakeError::Exists {
                op,
                path: loc.to_string(),
            });
        }
        if kind != DeviceKind::Fifo {
            // Device nodes need CAP_MKNOD in the initial user namespace.
            let initial = self.initial_userns();
            self.need_cap(op, actor, cap::MKNOD, initial)?;
        }
        let (huid, hgid) = self.chown_ids(op, actor, uid, gid)?;
        let umask = self.proc(actor)?.umask;
        self.create_as(
            op,
            spot.mns,
            &t,
            Node {
                kind: NodeKind::Device { kind, major, minor },
                mode: mode & !umask & 0o7777,
                uid: huid,
                gid: hgid,
            },
        )?;
        Ok(())
    }

    /// `chown`.
    pub(crate) fn chown(
        &mut self,
        actor: u32,
        loc: &Location,
        uid: u32,
        gid: u32,
    ) -> Result<(), FakeError> {
        let op = "chown";
        let (spot, t) = self.parent_exists(op, actor, loc, true)?;
        let (huid, hgid) = self.chown_ids(op, actor, uid, gid)?;
        let Some(((fs, fp), node)) = self.node(spot.mns, &t) else {
            return Err(FakeError::Missing {
                op,
                path: loc.to_string(),
            });
        };
        if node.uid != huid || node.gid != hgid {
            let u = self.ns_of(actor, Namespace::User)?;
            self.need_cap(op, actor, cap::CHOWN, u)?;
        }
        if self
            .covering_entry(spot.mns, &t)
            .is_some_and(|e| e.flags.contains(berth_core::plan::MountFlag::Ro))
        {
            return Err(FakeError::ReadOnly {
                op,
                path: loc.to_string(),
            });
        }
        if let Some(n) = self.m.fs_mut(fs).and_then(|f| f.nodes.get_mut(&fp)) {
            n.uid = huid;
            n.gid = hgid;
        }
        Ok(())
    }

    /// `cd`.
    pub(crate) fn chdir(&mut self, actor: u32, loc: &Location) -> Result<(), FakeError> {
        let op = "cd";
        let (spot, t) = self.parent_exists(op, actor, loc, true)?;
        match self.node(spot.mns, &t) {
            Some((_, n)) if n.is_dir() => {}
            Some(_) => {
                return Err(FakeError::NotDir {
                    op,
                    path: loc.to_string(),
                });
            }
            None => {
                return Err(FakeError::Missing {
                    op,
                    path: loc.to_string(),
                });
            }
        }
        self.proc_mut(actor)?.cwd = t;
        Ok(())
    }

    /// A pty from the actor's devpts, its slave bound onto `/dev/console` (made as an
    /// empty file when missing, as runc does) when `bind_console`.
    pub(crate) fn setup_console(
        &mut self,
        actor: u32,
        bind_console: bool,
    ) -> Result<(), FakeError> {
        let op = "setup-console";
        let mns = self.ns_of(actor, Namespace::Mount)?;
        self.need_cap(op, actor, cap::SYS_ADMIN, mns)?;
        let pts = Spot {
            mns,
            jail: "/".to_owned(),
            path: "/dev/pts".to_owned(),
            shown: "/dev/pts".to_owned(),
        };
        let not_pts = || FakeError::NotMountPoint {
            op,
            path: "/dev/pts (devpts)".to_owned(),
        };
        let p = self.resolve(&pts, true).map_err(|_| not_pts())?;
        let devpts = mount_at(self.mounts(mns), &p)
            .map(|i| self.mounts(mns)[i].fstype.clone())
            .ok_or_else(not_pts)?;
        if devpts != "devpts" {
            return Err(not_pts());
        }
        if !bind_console {
            return Ok(());
        }
        let console = Spot {
            mns,
            jail: "/".to_owned(),
            path: "/dev/console".to_owned(),
            shown: "/dev/console".to_owned(),
        };
        let c = match self.resolve(&console, true) {
            Ok(c) => c,
            Err(FakeError::Missing { path, .. }) => return Err(FakeError::Missing { op, path }),
            Err(e) => return Err(e),
        };
        let tid = match self.node(mns, &c) {
            Some((_, n)) if n.is_dir() => {
                return Err(FakeError::IsDir {
                    op,
                    path: "/dev/console".to_owned(),
                });
            }
            Some((id, _)) => id,
            None => {
                self.create(op, actor, mns, &c, NodeKind::File(String::new()), 0o600)?
                    .id
            }
        };
        let mut fs = Fs::new(FsKind::Pty, "devpts", "devpts", 0o620);
        fs.nodes
            .insert("/".to_owned(), Node::chardev(0o620, 136, 0));
        let fs_id = self.id();
        self.m.add_fs(fs_id, fs);
        let id = self.id();
        if let Some(mounts) = self.mounts_mut(mns) {
            mounts.push(MountEntry {
                id,
                target: c,
                fs: fs_id,
                fs_root: "/".to_owned(),
                mountpoint: Some(tid),
                source: "devpts".to_owned(),
                fstype: "devpts".to_owned(),
                flags: MountFlags::default(),
                locked: MountFlags::default(),
                propagation: Propagation::Private,
                peer: None,
                data: String::new(),
            });
        }
        self.proc_mut(actor)?.console = true;
        Ok(())
    }

    /// `send-fd`: the socket must exist.
    /// `connect` to a unix socket file: it must exist in the actor's view.
    pub(crate) fn connect(&mut self, actor: u32, socket: &HostPath) -> Result<(), FakeError> {
        if self.exists_file(actor, socket.as_str())?.is_none() {
            return Err(FakeError::Missing {
                op: "connect",
                path: socket.to_string(),
            });
        }
        Ok(())
    }
}
