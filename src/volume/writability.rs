//! Whether an image can be mounted read-write: the policy the command line applies before
//! it opens a volume (the man page, OPTIONS: `rw`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::oci::ImageKind;
use crate::sif::{OpenMode, SifError, SifImage};

/// Why `image` cannot be opened for writing, or `None` when it can: an OCI-SIF file we
/// may write to, in a directory we may write to. A read-only file, file system or native
/// SIF is mounted read-only, with a note, because mount(8) passes `rw` to every helper
/// that is not told `ro`. A file with no write bit counts as read-only even for root, who
/// could open it anyway: someone made it so.
pub fn why_read_only(image: &Path) -> Option<String> {
    let has_write_bit = std::fs::metadata(image).is_ok_and(|m| m.permissions().mode() & 0o222 != 0);
    // access(2), not a trial open: an image mounted read-only is never opened for writing.
    if !(has_write_bit && may_write(image)) {
        return Some("not writable".to_string());
    }
    // Updates are journaled beside the image (IMAGE.sifmount-journal).
    let dir = match image.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !may_write(dir) {
        return Some("its directory is not writable, and updates are journaled there".to_string());
    }
    let oci = match SifImage::open(image, OpenMode::ReadOnly) {
        // A crash interrupted an update: the read-write open finishes it (under the lock).
        Err(e) if matches!(e.kind(), SifError::PendingUpdate { .. }) => return None,
        other => other,
    }
    .is_ok_and(|sif| matches!(ImageKind::of(&sif), ImageKind::OciSif { .. }));
    (!oci).then(|| "not an OCI-SIF".to_string())
}

fn may_write(path: &Path) -> bool {
    CString::new(path.as_os_str().as_bytes()).is_ok_and(|c| crate::sys::may_write(&c))
}
