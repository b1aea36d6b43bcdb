//! `sifmount -u MOUNTPOINT`: unmount a FUSE file system, including a stale one.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::checks::{find_fusermount, is_root};
use crate::fatal::{one_line, Fatal};
use sifmount::mountinfo;

pub fn unmount(path: &Path) -> Result<(), Fatal> {
    let shown = path.display();
    let target = resolve(path)?;
    let entries = mountinfo::read().map_err(|e| Fatal::failure(e.to_string()))?;
    let Some(entry) = mountinfo::mount_at(&entries, &target) else {
        return Err(Fatal::failure(format!("{shown}: not mounted")));
    };
    // -u is for FUSE mounts only, as fusermount3 -u is: run as root by mistake on /proc
    // or /home it must not take them away.
    if !entry.is_fuse() {
        return Err(Fatal::failure(format!(
            "{shown}: not a FUSE mount but {} from {}; sifmount -u unmounts only FUSE \
             file systems",
            entry.fs_type, entry.source
        )));
    }
    if is_root() {
        match retry_while_busy(|| umount(&target)) {
            Ok(()) => return Ok(()),
            // Root without CAP_SYS_ADMIN (a user namespace): fusermount3 may still do it.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                log::debug!("umount2 {}: {e}; trying fusermount3", target.display())
            }
            Err(e) => return Err(umount_error(path, &e)),
        }
    }
    fusermount_unmount(path, &target)
}

/// The path as mountinfo lists it. A stale mount point cannot be stat-ed (ENOTCONN), so
/// only its parent is resolved then.
fn resolve(path: &Path) -> Result<PathBuf, Fatal> {
    let shown = path.display();
    match path.canonicalize() {
        Ok(p) => Ok(p),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            let absolute =
                std::path::absolute(path).map_err(|e| Fatal::failure(format!("{shown}: {e}")))?;
            match (absolute.parent(), absolute.file_name()) {
                (Some(parent), Some(name)) => parent
                    .canonicalize()
                    .map(|p| p.join(name))
                    .map_err(|e| Fatal::failure(format!("{shown}: {e}"))),
                _ => Ok(absolute),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(Fatal::failure(format!("{shown}: no such directory")))
        }
        Err(e) => Err(Fatal::failure(format!("{shown}: {e}"))),
    }
}

/// Lazy unmount of a mount this process serves, for when a plain unmount failed because
/// it is busy: the mount leaves the namespace at once, and the session ends when its last
/// user lets go.
pub fn detach(target: &Path) -> io::Result<()> {
    if is_root() {
        match umount2(target, libc::MNT_DETACH) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            other => return other,
        }
    }
    let fusermount = find_fusermount()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "fusermount3 not found"))?;
    let output = Command::new(&fusermount)
        .args(["-u", "-z", "--"])
        .arg(target)
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(one_line(&String::from_utf8_lossy(
            &output.stderr,
        ))))
    }
}

fn umount(target: &Path) -> io::Result<()> {
    umount2(target, 0)
}

/// The kernel sends FUSE's RELEASE for a closed file asynchronously, so a mount whose last
/// file was closed a moment ago can still be busy (`cat f; sifmount -u mnt` in a script).
/// A second or so covers that; a mount that is really in use stays busy.
fn retry_while_busy(mut attempt: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    const TRIES: u32 = 10;
    for _ in 1..TRIES {
        match attempt() {
            Err(e) if is_busy(&e) => std::thread::sleep(std::time::Duration::from_millis(100)),
            other => return other,
        }
    }
    attempt()
}

fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EBUSY) || e.to_string().contains("Device or resource busy")
}

fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let c_path = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    sifmount::sys::umount2(&c_path, flags)
}

fn umount_error(path: &Path, e: &io::Error) -> Fatal {
    let shown = path.display();
    match e.raw_os_error() {
        Some(libc::EBUSY) => busy(path),
        Some(libc::EINVAL) => Fatal::failure(format!("{shown}: not mounted")),
        _ => Fatal::failure(format!("{shown}: cannot unmount: {e}")),
    }
}

fn fusermount_unmount(path: &Path, target: &Path) -> Result<(), Fatal> {
    let shown = path.display();
    let Some(fusermount) = find_fusermount() else {
        return Err(Fatal::failure(format!(
            "{shown}: cannot unmount: fusermount3 not found (install the fuse3 package) \
             and not running as root"
        )));
    };
    let run = || -> io::Result<()> {
        let output = Command::new(&fusermount)
            .arg("-u")
            .arg("--")
            .arg(target)
            .output()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e}", fusermount.display()),
                )
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = one_line(&String::from_utf8_lossy(&output.stderr));
        Err(io::Error::other(if stderr.is_empty() {
            format!("{} exited with {}", fusermount.display(), output.status)
        } else {
            stderr
        }))
    };
    retry_while_busy(run).map_err(|e| {
        if is_busy(&e) {
            busy(path)
        } else {
            Fatal::failure(format!("{shown}: cannot unmount: {e}"))
        }
    })
}

fn busy(path: &Path) -> Fatal {
    let shown = path.display();
    Fatal::failure(format!(
        "{shown}: busy: a process has a file open or its working directory in it \
         (fuser -vm {shown} lists them); nothing was unmounted"
    ))
}
