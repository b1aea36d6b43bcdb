//! Checks made before mounting, so that each likely mistake gets its own message instead
//! of whatever the kernel or fusermount3 would say, and so that nothing is forked or
//! mounted when it cannot work.

use std::io;
use std::path::{Path, PathBuf};

use crate::fatal::Fatal;
use sifmount::mountinfo;

const DEV_FUSE: &str = "/dev/fuse";

/// The mount point as the kernel will see it (absolute, symlinks resolved), once it is
/// known to be an existing directory that is not already a mount point.
pub fn mountpoint(path: &Path) -> Result<PathBuf, Fatal> {
    let shown = path.display();
    if is_dev_fd(path) {
        // mount.fuse3's drop_privileges mounts by itself and passes the FUSE file
        // descriptor as /dev/fd/N, which only libfuse file systems understand.
        return Err(Fatal::failure(format!(
            "{shown}: a pre-mounted FUSE file descriptor is not supported; \
             remove the drop_privileges mount option"
        )));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Fatal::failure(format!(
                "{shown}: mountpoint is not a directory"
            )))
        }
        Err(e) => return Err(inaccessible(path, &e)),
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| Fatal::failure(format!("{shown}: cannot resolve the mountpoint: {e}")))?;
    let entries = mountinfo::read().map_err(|e| Fatal::failure(e.to_string()))?;
    if let Some(entry) = mountinfo::mount_at(&entries, &canonical) {
        if entry.is_fuse() && disconnected(&canonical) {
            return Err(stale(path));
        }
        let hint = if entry.is_fuse() {
            format!("unmount it first (sifmount -u {})", canonical.display())
        } else {
            "choose another directory".to_string()
        };
        return Err(Fatal::failure(format!(
            "{shown}: mountpoint is busy: {} is already a mount point ({} from {}); {hint}",
            canonical.display(),
            entry.fs_type,
            entry.source
        )));
    }
    Ok(canonical)
}

/// Mounting over files hides them until the unmount, without a word: refused unless
/// `-o nonempty`, as libfuse 2's fusermount did. A directory that cannot be listed is left
/// to the mount to judge.
pub fn empty_mountpoint(canonical: &Path) -> Result<(), Fatal> {
    let Ok(mut entries) = std::fs::read_dir(canonical) else {
        return Ok(());
    };
    if entries.next().is_none() {
        return Ok(());
    }
    Err(Fatal::failure(format!(
        "{}: mountpoint is not empty: the mount would hide its files; \
         give -o nonempty if that is what you want",
        canonical.display()
    )))
}

fn inaccessible(path: &Path, e: &io::Error) -> Fatal {
    let shown = path.display();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Fatal::failure(format!("{shown}: mountpoint does not exist")),
        Some(libc::ENOTDIR) => Fatal::failure(format!(
            "{shown}: mountpoint does not exist (part of its path is not a directory)"
        )),
        Some(libc::ENOTCONN) => stale(path),
        _ => Fatal::failure(format!("{shown}: cannot access the mountpoint: {e}")),
    }
}

/// A FUSE mount whose file system process has gone: every access fails with ENOTCONN
/// until it is unmounted.
fn stale(path: &Path) -> Fatal {
    let shown = path.display();
    let holder = std::path::absolute(path).ok().and_then(|absolute| {
        let entries = mountinfo::read().ok()?;
        mountinfo::mount_holding(&entries, &absolute).map(|e| e.mount_point.clone())
    });
    match holder {
        Some(at) if at != Path::new("/") => Fatal::failure(format!(
            "{shown}: stale FUSE mount at {} (its file system process has gone); \
             clear it with: sifmount -u {}",
            at.display(),
            at.display()
        )),
        _ => Fatal::failure(format!(
            "{shown}: stale FUSE mount (its file system process has gone); \
             clear it with: sifmount -u {shown}"
        )),
    }
}

/// Whether the FUSE mount at `path` has lost its file system process. `stat` cannot tell:
/// the kernel answers it from cached attributes (default_permissions fetches the root's on
/// the first path walk, for a day), but it always asks the file system for `statfs`.
fn disconnected(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    sifmount::sys::statfs(&c).is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN))
}

fn is_dev_fd(path: &Path) -> bool {
    path.strip_prefix("/dev/fd")
        .ok()
        .and_then(|rest| rest.to_str())
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The kernel side of FUSE must exist; without it mount(2) fails with a bare ENODEV or
/// ENOENT.
pub fn fuse_device() -> Result<(), Fatal> {
    match std::fs::metadata(DEV_FUSE) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Fatal::failure(format!(
                "{DEV_FUSE} is missing: the fuse kernel module is not loaded (modprobe fuse) \
                 or, in a container, the device was not passed in"
            )))
        }
        Err(e) => return Err(Fatal::failure(format!("cannot access {DEV_FUSE}: {e}"))),
    }
    if is_root() {
        return Ok(());
    }
    // fuser opens the device itself before asking fusermount3 to mount it (libfuse lets
    // fusermount3 open it as root), so a user who cannot open it cannot mount at all.
    match std::fs::File::options()
        .read(true)
        .write(true)
        .open(DEV_FUSE)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Fatal::failure(format!(
            "cannot open {DEV_FUSE}: permission denied; sifmount needs read and write access \
             to it (mode 0666, the usual one) to mount as a non-root user, or mount as root"
        ))),
        Err(e) => Err(Fatal::failure(format!("cannot open {DEV_FUSE}: {e}"))),
    }
}

/// Without root, the kernel mount is made by the setuid helper fusermount3 (fuser runs it);
/// when it is missing the error would be a bare "No such file or directory".
pub fn fusermount_when_needed() -> Result<(), Fatal> {
    if is_root() || find_fusermount().is_some() {
        return Ok(());
    }
    Err(Fatal::failure(
        "fusermount3 not found: mounting as a non-root user needs it \
         (install the fuse3 package)",
    ))
}

pub fn is_root() -> bool {
    sifmount::sys::euid() == 0
}

/// fusermount3, else the FUSE 2 fusermount, from PATH.
pub fn find_fusermount() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["fusermount3", "fusermount"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Turns an error from mounting into one line that says what to do about it.
pub fn explain_mount_error(e: &io::Error, image: &Path, mountpoint: &Path) -> Fatal {
    let detail = crate::fatal::one_line(&e.to_string());
    let at = mountpoint.display();
    let not_permitted = e.raw_os_error() == Some(libc::EPERM)
        || e.kind() == io::ErrorKind::PermissionDenied
        || detail.contains("Operation not permitted")
        || detail.contains("user_allow_other");
    if not_permitted {
        return Fatal::failure(format!(
            "not permitted to mount at {at} ({detail}): mount as root, or as a user who owns \
             the mountpoint with fusermount3 installed setuid root; allow_other and \
             allow_root also need user_allow_other in /etc/fuse.conf, and a container needs \
             CAP_SYS_ADMIN or /dev/fuse with fusermount3"
        ));
    }
    match e.raw_os_error() {
        Some(libc::ENODEV) => Fatal::failure(format!(
            "cannot mount at {at}: the kernel has no FUSE support (modprobe fuse)"
        )),
        Some(libc::ENOENT) if !Path::new(DEV_FUSE).exists() => Fatal::failure(format!(
            "{DEV_FUSE} is missing: the fuse kernel module is not loaded (modprobe fuse) \
             or, in a container, the device was not passed in"
        )),
        _ => Fatal::failure(format!(
            "cannot mount {} at {at}: {detail}",
            image.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_fd_paths() {
        assert!(is_dev_fd(Path::new("/dev/fd/3")));
        assert!(is_dev_fd(Path::new("/dev/fd/12")));
        assert!(!is_dev_fd(Path::new("/dev/fd")));
        assert!(!is_dev_fd(Path::new("/dev/fd/x")));
        assert!(!is_dev_fd(Path::new("/mnt/dev/fd/3")));
    }

    #[test]
    fn mount_errors_say_what_to_do() {
        let image = Path::new("/i.sif");
        let mp = Path::new("/mnt");
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let m = explain_mount_error(&eperm, image, mp).message;
        assert!(
            m.starts_with("not permitted to mount at /mnt (Operation not permitted"),
            "{m}"
        );
        let fusermount = io::Error::new(
            io::ErrorKind::PermissionDenied,
            "fusermount3: option allow_other only allowed if 'user_allow_other' is set in /etc/fuse.conf\n",
        );
        let m = explain_mount_error(&fusermount, image, mp).message;
        assert!(
            m.contains("(fusermount3: option allow_other only allowed"),
            "{m}"
        );
        assert!(!m.contains('\n'), "{m}");
        let other = io::Error::other("fusermount3: bad mount point /mnt: Too many levels\nmore\n");
        let m = explain_mount_error(&other, image, mp).message;
        assert_eq!(
            m,
            "cannot mount /i.sif at /mnt: fusermount3: bad mount point /mnt: Too many levels; more"
        );
        let enodev = io::Error::from_raw_os_error(libc::ENODEV);
        assert!(explain_mount_error(&enodev, image, mp)
            .message
            .contains("modprobe fuse"));
    }

    #[test]
    fn a_directory_with_files_is_refused_as_a_mountpoint() {
        let dir = tempfile::tempdir().unwrap();
        assert!(empty_mountpoint(dir.path()).is_ok());
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        let m = empty_mountpoint(dir.path()).unwrap_err().message;
        assert!(
            m.starts_with(&format!(
                "{}: mountpoint is not empty",
                dir.path().display()
            )),
            "{m}"
        );
        assert!(m.contains("-o nonempty"), "{m}");
    }

    #[test]
    fn a_file_and_a_missing_path_are_not_mountpoints() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let m = mountpoint(&file).unwrap_err().message;
        assert!(m.ends_with(": mountpoint is not a directory"), "{m}");
        let m = mountpoint(&dir.path().join("missing")).unwrap_err().message;
        assert!(m.ends_with(": mountpoint does not exist"), "{m}");
        let m = mountpoint(&file.join("below")).unwrap_err().message;
        assert!(m.contains("part of its path is not a directory"), "{m}");
        assert_eq!(
            mountpoint(dir.path()).unwrap(),
            dir.path().canonicalize().unwrap()
        );
        let m = mountpoint(Path::new("/proc")).unwrap_err().message;
        assert!(
            m.starts_with("/proc: mountpoint is busy: /proc is already a mount point (proc"),
            "{m}"
        );
    }
}
