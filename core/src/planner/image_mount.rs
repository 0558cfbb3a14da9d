//! The overlay root filesystem of a container made from an image.
//!
//! [`plan_rootfs`] plans, as runtime steps on the host, what docker's overlay2 driver does
//! when it mounts a container's layer: `mkdir -p` of the container's upper, work and merged
//! directories, then `mount -t overlay overlay MERGED -o
//! lowerdir=TOP:...:BOTTOM,upperdir=UPPER,workdir=WORK`. The image layers are read-only
//! lower directories, topmost first as overlayfs wants them; the container's changes go to
//! its upper directory.
//!
//! Invariant: the plan uses only existing ops, each with its [`crate::plan::undo`], so a
//! failure at any step (or a later `delete`) removes exactly what was made: the mount is
//! detached and each `mkdir -p` removes the directories it created, deepest first.

use crate::plan::{HostPath, Location, MountFlags, MountOp, MountSource, Op, PlanBuilder};

/// The longest mount data the kernel takes: `mount(2)` copies the data into one page
/// (`copy_mount_options`, 4096 bytes on the architectures berth runs on), and the string's
/// terminating NUL needs one byte of it. docker's overlay2 shortens layer paths with
/// symlinks when the data would not fit; berth refuses for now.
pub const MAX_MOUNT_DATA: usize = 4095;

/// The most lower layers overlayfs stacks (`OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;

/// An overlay rootfs that cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageMountError {
    /// An image without layers: overlayfs needs at least one lower directory.
    #[error("an overlay rootfs needs at least one image layer")]
    NoLayers,
    /// More layers than overlayfs can stack.
    #[error("{count} image layers exceed overlayfs's limit of {MAX_LAYERS}")]
    TooManyLayers {
        /// How many were given.
        count: usize,
    },
    /// A path that is not absolute, or that has a character the overlay option syntax
    /// uses (`:` separates lower directories, `,` options) or a NUL byte.
    #[error("overlay path {0:?} must be absolute and free of ':', ',' and NUL")]
    BadPath(String),
    /// The mount options are longer than the kernel takes.
    #[error(
        "overlay mount options are {len} bytes, more than the kernel's {MAX_MOUNT_DATA}: {data:.80}..."
    )]
    DataTooLong {
        /// Their length.
        len: usize,
        /// The options.
        data: String,
    },
}

fn check_path(p: &HostPath) -> Result<(), ImageMountError> {
    let s = p.as_str();
    if s.starts_with('/') && !s.contains([':', ',', '\0']) {
        Ok(())
    } else {
        Err(ImageMountError::BadPath(s.to_owned()))
    }
}

/// The overlay mount data: `lowerdir=TOP:...:BOTTOM,upperdir=UPPER,workdir=WORK`, with
/// `layers` given bottom first (the order of an image manifest).
pub fn overlay_data(
    layers: &[HostPath],
    upper: &HostPath,
    work: &HostPath,
) -> Result<String, ImageMountError> {
    if layers.is_empty() {
        return Err(ImageMountError::NoLayers);
    }
    if layers.len() > MAX_LAYERS {
        return Err(ImageMountError::TooManyLayers {
            count: layers.len(),
        });
    }
    for p in layers.iter().chain([upper, work]) {
        check_path(p)?;
    }
    let lower: Vec<&str> = layers.iter().rev().map(HostPath::as_str).collect();
    let data = format!(
        "lowerdir={},upperdir={upper},workdir={work}",
        lower.join(":")
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(ImageMountError::DataTooLong {
            len: data.len(),
            data,
        });
    }
    Ok(data)
}

/// Plans a container's overlay rootfs at `merged`: `layers` are the image's unpacked layer
/// directories, bottom first; `upper` and `work` are the container's own. Emits runtime
/// steps only; nothing is added to `b` when an error is returned.
pub fn plan_rootfs(
    layers: &[HostPath],
    upper: &HostPath,
    work: &HostPath,
    merged: &HostPath,
    b: &mut PlanBuilder,
) -> Result<(), ImageMountError> {
    check_path(merged)?;
    let data = overlay_data(layers, upper, work)?;
    // Modes as docker's overlay2: the upper directory 0755, work and merged 0700.
    for (dir, mode) in [(upper, 0o755), (work, 0o700), (merged, 0o700)] {
        let made = b.made();
        b.runtime(Op::MkdirAll {
            path: Location::Host(dir.clone()),
            mode,
            made,
        });
    }
    b.runtime(Op::Mount(MountOp {
        source: MountSource::Fs {
            fstype: "overlay".to_owned(),
            source: "overlay".to_owned(),
        },
        target: Location::Host(merged.clone()),
        flags: MountFlags::default(),
        data,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Step, undo};

    fn h(s: &str) -> HostPath {
        HostPath::new(s)
    }

    fn layers(n: usize) -> Vec<HostPath> {
        (0..n)
            .map(|i| h(&format!("/var/lib/berth/layers/l{i}/diff")))
            .collect()
    }

    const C: &str = "/var/lib/berth/containers/c1";

    fn plan(n: usize) -> crate::plan::Plan {
        let mut b = PlanBuilder::new();
        plan_rootfs(
            &layers(n),
            &h(&format!("{C}/upper")),
            &h(&format!("{C}/work")),
            &h(&format!("{C}/merged")),
            &mut b,
        )
        .unwrap();
        let p = b.finish();
        p.check().unwrap();
        p
    }

    #[test]
    fn golden_one_layer() {
        insta::assert_snapshot!(plan(1).to_string());
    }

    #[test]
    fn golden_three_layers_topmost_first() {
        let p = plan(3);
        insta::assert_snapshot!(p.to_string());
        let Op::Mount(m) = &p.steps[3].op else {
            panic!("step 3 is the mount")
        };
        assert!(m.data.starts_with(
            "lowerdir=/var/lib/berth/layers/l2/diff:/var/lib/berth/layers/l1/diff:/var/lib/berth/layers/l0/diff,"
        ));
    }

    #[test]
    fn every_step_has_an_undo() {
        let p = plan(2);
        let undos: Vec<String> = p
            .steps
            .iter()
            .rev()
            .map(|s| p.step_text(&undo(s).unwrap()))
            .collect();
        assert_eq!(
            undos,
            [
                format!("runtime umount -l {C}/merged"),
                "runtime remove-made $made.2".to_owned(),
                "runtime remove-made $made.1".to_owned(),
                "runtime remove-made $made.0".to_owned(),
            ]
        );
        assert!(
            p.steps
                .iter()
                .all(|s: &Step| s.actor == crate::Actor::Runtime)
        );
    }

    #[test]
    fn errors() {
        let (u, w, m) = (h("/u"), h("/w"), h("/m"));
        let run = |l: &[HostPath], u: &HostPath, w: &HostPath, m: &HostPath| {
            let mut b = PlanBuilder::new();
            let r = plan_rootfs(l, u, w, m, &mut b);
            assert!(b.finish().steps.is_empty(), "nothing planned on error");
            r.unwrap_err()
        };
        assert_eq!(run(&[], &u, &w, &m), ImageMountError::NoLayers);
        assert_eq!(
            run(&layers(501), &u, &w, &m),
            ImageMountError::TooManyLayers { count: 501 }
        );
        for bad in ["rel/dir", "/a:b", "/a,b", "/a\0"] {
            assert_eq!(
                run(&[h(bad)], &u, &w, &m),
                ImageMountError::BadPath(bad.to_owned())
            );
            assert_eq!(
                run(&layers(1), &h(bad), &w, &m),
                ImageMountError::BadPath(bad.to_owned())
            );
            assert_eq!(
                run(&layers(1), &u, &h(bad), &m),
                ImageMountError::BadPath(bad.to_owned())
            );
            assert_eq!(
                run(&layers(1), &u, &w, &h(bad)),
                ImageMountError::BadPath(bad.to_owned())
            );
        }
    }

    #[test]
    fn data_length_limit() {
        // Each lower path is 100 bytes plus a ':' separator.
        let long =
            |n: usize| -> Vec<HostPath> { (0..n).map(|i| h(&format!("/{:0>99}", i))).collect() };
        let fixed = "lowerdir=,upperdir=/u,workdir=/w".len();
        // The largest count that fits: fixed + 101n - 1 <= 4095.
        let fits = (MAX_MOUNT_DATA + 1 - fixed) / 101;
        let d = overlay_data(&long(fits), &h("/u"), &h("/w")).unwrap();
        assert!(d.len() <= MAX_MOUNT_DATA);
        let e = overlay_data(&long(fits + 1), &h("/u"), &h("/w")).unwrap_err();
        let ImageMountError::DataTooLong { len, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*len, fixed + 101 * (fits + 1) - 1);
        assert!(e.to_string().contains("more than the kernel's 4095"));
    }
}
