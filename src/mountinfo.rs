//! The mount table of this process's mount namespace (`/proc/self/mountinfo`), read to
//! tell whether a directory is already a mount point and of what kind.
//!
//! mountinfo rather than stat: a stale FUSE mount cannot be stat-ed (ENOTCONN), and a
//! bind mount of a directory onto itself has the same device as its parent. The command
//! line uses it to check mount points and unmount; the tests, to see what they mounted.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

const MOUNTINFO: &str = "/proc/self/mountinfo";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    /// The per-mount options (`ro,nosuid,…`).
    pub options: String,
    /// `fuse`, `fuse.sifmount`, `ext4`, …
    pub fs_type: String,
    pub source: String,
    /// The file system's device, `major:minor` as the kernel writes it: how sysfs names
    /// its backing device (`/sys/class/bdi/<device>`).
    pub device: String,
}

impl MountEntry {
    pub fn is_fuse(&self) -> bool {
        self.fs_type == "fuse" || self.fs_type == "fuseblk" || self.fs_type.starts_with("fuse.")
    }
}

/// Every mount, in the order the kernel lists them (later ones are on top).
pub fn read() -> io::Result<Vec<MountEntry>> {
    let bytes = std::fs::read(MOUNTINFO)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {MOUNTINFO}: {e}")))?;
    Ok(parse(&bytes))
}

/// The topmost mount at exactly `path` (which must be absolute and canonical).
pub fn mount_at<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == path)
}

/// The mount that holds `path`: the longest mount point that is a prefix of it.
pub fn mount_holding<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    entries
        .iter()
        .rev()
        .filter(|e| path.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.components().count())
}

/// Parses mountinfo lines (proc(5)); malformed lines are skipped rather than failing the
/// whole table, since a check that cannot see one line should still see the others.
pub fn parse(bytes: &[u8]) -> Vec<MountEntry> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    // id parent major:minor root mount-point options [optional...] - type source super
    let device = fields.get(2)?;
    let mount_point = fields.get(4)?;
    let options = fields.get(5)?;
    let separator = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    let fs_type = fields.get(separator + 1)?;
    let source = fields.get(separator + 2)?;
    Some(MountEntry {
        mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
        options: String::from_utf8_lossy(options).into_owned(),
        fs_type: String::from_utf8_lossy(&unescape(fs_type)).into_owned(),
        source: String::from_utf8_lossy(&unescape(source)).into_owned(),
        device: String::from_utf8_lossy(device).into_owned(),
    })
}

/// The kernel writes space, tab, newline and backslash as `\` and three octal digits.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 4 <= field.len() {
            let digits = &field[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
61 22 0:50 / /tmp/with\\040space rw,nosuid,nodev,relatime shared:300 - fuse.sifmount /images/a\\040b.sif ro,user_id=0,group_id=0
62 22 0:51 / /mnt rw,relatime - fuse /dev/fuse rw,user_id=0,group_id=0
63 62 0:52 / /mnt rw,relatime master:4 propagate_from:2 - tmpfs tmpfs rw
garbage line
64 22 0:53 / /back\\134slash\\011tab rw - fuseblk /dev/sdb1 rw
";

    #[test]
    fn parses_fields_and_escapes() {
        let entries = parse(SAMPLE);
        assert_eq!(entries.len(), 6, "{entries:#?}");
        assert_eq!(entries[0].mount_point, Path::new("/"));
        assert_eq!(entries[0].fs_type, "ext4");
        assert_eq!(entries[0].source, "/dev/nvme0n1p2");
        assert_eq!(entries[2].mount_point, Path::new("/tmp/with space"));
        assert_eq!(entries[2].fs_type, "fuse.sifmount");
        assert_eq!(entries[2].source, "/images/a b.sif");
        assert_eq!(entries[2].options, "rw,nosuid,nodev,relatime");
        assert_eq!(
            (entries[0].device.as_str(), entries[2].device.as_str()),
            ("259:2", "0:50")
        );
        // Several optional fields before the separator.
        assert_eq!(entries[4].fs_type, "tmpfs");
        assert_eq!(entries[5].mount_point, Path::new("/back\\slash\ttab"));
    }

    #[test]
    fn fuse_types() {
        let entries = parse(SAMPLE);
        let fuse: Vec<bool> = entries.iter().map(MountEntry::is_fuse).collect();
        assert_eq!(fuse, [false, false, true, true, false, true]);
    }

    #[test]
    fn the_topmost_mount_at_a_path() {
        let entries = parse(SAMPLE);
        assert_eq!(
            mount_at(&entries, Path::new("/mnt")).map(|e| e.fs_type.as_str()),
            Some("tmpfs")
        );
        assert_eq!(
            mount_at(&entries, Path::new("/proc")).map(|e| e.fs_type.as_str()),
            Some("proc")
        );
        assert_eq!(mount_at(&entries, Path::new("/tmp")), None);
        assert_eq!(mount_at(&entries, Path::new("/mn")), None);
    }

    #[test]
    fn the_mount_holding_a_path() {
        let entries = parse(SAMPLE);
        let holding =
            |p: &str| mount_holding(&entries, Path::new(p)).map(|e| e.mount_point.clone());
        assert_eq!(
            holding("/tmp/with space/images"),
            Some("/tmp/with space".into())
        );
        assert_eq!(holding("/tmp/with"), Some("/".into()));
        assert_eq!(holding("/mnt/x"), Some("/mnt".into()));
        assert_eq!(holding("/proc/self"), Some("/proc".into()));
    }

    #[test]
    fn odd_escapes_are_kept_as_written() {
        assert_eq!(unescape(b"a\\04"), b"a\\04");
        assert_eq!(unescape(b"a\\0x1b"), b"a\\0x1b");
        assert_eq!(unescape(b"\\777"), b"\\777");
        assert_eq!(unescape(b"\\040\\040"), b"  ");
        assert_eq!(unescape(b"end\\"), b"end\\");
    }

    #[test]
    fn this_machine_has_a_root_mount() {
        let entries = read().unwrap();
        assert!(mount_at(&entries, Path::new("/")).is_some(), "{entries:#?}");
    }
}
