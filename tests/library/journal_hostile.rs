//! The update journal against someone who shares the image's directory, on real files:
//! what is at the journal's name is written only when it is a journal this process wrote,
//! read only when sifmount could have written it (a regular file with one link, owned by
//! this user or the image's owner, writable by nobody else, not too large), found beside
//! the image itself whatever link it is opened through, and applied only to the file, in
//! the state, it was written for.
//!
//! The journals here are genuine: an attach whose every image write fails leaves its
//! journal on disk with the image still old, exactly as a crash right after the journal
//! became durable does. Runs as root (CI does): the ownership cases give files to a second
//! user, uid 65534.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{self, assert_bytes_eq, eio, mounted, read_upstream, upstream_last_signature};
use sifmount::cosign::{attach, prepare, DropFiles};
use sifmount::oci::OciSif;
use sifmount::sif::{
    journal_path, FileIdentity, FileJournal, JournalStore, OpenMode, RecoveryOutcome, SifError,
    SifImage, Storage, MAX_JOURNAL_LEN,
};

const SIGNED1: &str = "generated/squashfs-image.signed1.oci.sif";
const SIGNED2: &str = "generated/squashfs-image.signed2.oci.sif";
const OTHER: &str = "generated/hello-world-docker-v2-manifest.oci.sif";
const NOBODY: u32 = 65534;
/// Anything that could block (a FIFO) must be refused long before this.
const PROMPT: Duration = Duration::from_secs(20);

/// For the tests that give files to [`NOBODY`].
#[track_caller]
fn need_root_to_chown() {
    common::need_root_saying(&format!(
        "this test gives files to another user (uid {NOBODY}) and must run as root (CI does)"
    ));
}

/// The image file, readable through `read_exact_at`, that refuses every change: an
/// update journals, then fails to apply and to undo, and leaves its journal behind.
struct Unwritable(fs::File);

impl Storage for Unwritable {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        Storage::read_exact_at(&self.0, buf, offset)
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(eio())
    }
    fn len(&self) -> io::Result<u64> {
        Storage::len(&self.0)
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(eio())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn copy_range(&self, _: u64, _: u64, _: u64) -> io::Result<()> {
        Err(eio())
    }
    fn zero_range(&self, _: u64, _: u64) -> io::Result<()> {
        Err(eio())
    }
    fn identity(&self) -> Option<FileIdentity> {
        Storage::identity(&self.0)
    }
}

/// The attach that turns SIGNED1 into SIGNED2.
fn second_signature() -> DropFiles {
    let (payload, annotations) = upstream_last_signature(SIGNED2);
    DropFiles {
        payload: Some(payload),
        annotations: Some(serde_json::to_vec(&annotations).unwrap()),
        ..DropFiles::default()
    }
}

/// SIGNED1 at `dir/image.oci.sif` (mode 0644), with the journal of the attach that makes
/// it SIGNED2 beside it, the image untouched. `opened_as` is the path the update opens it
/// by (a link, say). Returns the image's path.
fn interrupted_update(dir: &Path, opened_as: Option<&Path>) -> PathBuf {
    let image = dir.join("image.oci.sif");
    fs::write(&image, read_upstream(SIGNED1)).unwrap();
    fs::set_permissions(&image, fs::Permissions::from_mode(0o644)).unwrap();
    let by = opened_as.unwrap_or(&image);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(by)
        .unwrap();
    let journal = FileJournal::for_open_image(by, &file).unwrap();
    let sif = SifImage::from_storage_with_journal(
        Box::new(Unwritable(file)),
        Box::new(journal),
        OpenMode::ReadWrite,
    )
    .unwrap();
    let mut oci = OciSif::from_sif(sif).unwrap();
    let files = second_signature();
    let a = prepare(&oci, &files).unwrap().expect("a complete drop");
    let e = attach(&mut oci, &a).unwrap_err();
    assert!(e.to_string().contains("journal"), "{e}");
    drop(oci);
    assert_eq!(fs::read(&image).unwrap(), read_upstream(SIGNED1));
    assert!(journal_of(&image).exists(), "the journal is left");
    image
}

fn journal_of(image: &Path) -> PathBuf {
    journal_path(image).unwrap()
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

fn sifmount(args: &[&std::ffi::OsStr]) -> mounted::Output {
    mounted::run(
        Command::new(mounted::sifmount_bin())
            .args(args)
            .env_remove("RUST_LOG"),
        PROMPT,
    )
}

fn run_on(flag: &str, image: &Path) -> mounted::Output {
    sifmount(&[flag.as_ref(), image.as_os_str()])
}

/// `--recover` of `image` completes the interrupted attach: SIGNED2, byte for byte, and
/// no journal left.
#[track_caller]
fn assert_recovered(image: &Path) {
    assert_eq!(
        SifImage::recover(image).unwrap(),
        RecoveryOutcome::RolledForward
    );
    assert_bytes_eq(
        &fs::read(image).unwrap(),
        &read_upstream(SIGNED2),
        "completed",
    );
    assert!(!journal_of(image).exists(), "the journal is removed");
}

#[track_caller]
fn refused(e: SifError, image: &Path, why: &str) -> String {
    let msg = e.to_string();
    assert!(matches!(e.kind(), SifError::JournalRefused { .. }), "{msg}");
    assert!(
        msg.contains(image.to_str().unwrap()),
        "names the image: {msg}"
    );
    assert!(
        msg.contains(journal_of(image).to_str().unwrap()),
        "names the journal: {msg}"
    );
    assert!(msg.contains(why), "says why ({why}): {msg}");
    assert!(msg.contains("nothing was written"), "{msg}");
    msg
}

#[test]
fn a_genuine_journal_is_completed_and_left_with_mode_0600_and_one_link() {
    let dir = tempfile::tempdir().unwrap();
    let image = interrupted_update(dir.path(), None);
    let meta = fs::symlink_metadata(journal_of(&image)).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.nlink(), 1);
    assert_recovered(&image);
    assert!(!journal_of(&image).exists());
}

#[test]
fn a_journal_owned_by_another_user_is_refused_by_writers_and_ignored_by_readers() {
    need_root_to_chown();
    let dir = tempfile::tempdir().unwrap();
    let image = interrupted_update(dir.path(), None);
    let journal = journal_of(&image);
    let record = fs::read(&journal).unwrap();
    // Another user, who can create files in the directory but not write the image, puts
    // a journal there: sifmount running as root must not apply it.
    chown(&journal, NOBODY);
    let before = fs::read(&image).unwrap();

    let e = SifImage::open(&image, OpenMode::ReadWrite).unwrap_err();
    refused(e, &image, "owned by uid 65534");
    let e = SifImage::recover(&image).unwrap_err();
    refused(e, &image, "owned by uid 65534");
    let o = run_on("--recover", &image);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("owned by uid 65534"), "{}", o.stderr);
    // Readers are not held up by it: it says nothing about this image.
    SifImage::open(&image, OpenMode::ReadOnly).unwrap();
    let o = run_on("--inspect", &image);
    assert!(o.success(), "{o:?}");
    let o = run_on("--verify", &image);
    assert!(o.success(), "{o:?}");
    assert_eq!(fs::read(&image).unwrap(), before, "nothing written");
    assert_eq!(
        fs::read(&journal).unwrap(),
        record,
        "the journal is left for the admin"
    );

    // The image's owner may have written it (a root mount of someone else's image is
    // then recovered by its owner's own mount, and the other way round).
    chown(&image, NOBODY);
    assert_recovered(&image);
}

#[test]
fn a_journal_others_can_write_or_with_two_links_or_too_large_is_refused() {
    need_root_to_chown();
    for (what, why, spoil) in [
        (
            "group-writable",
            "writable by others",
            Box::new(|j: &Path| fs::set_permissions(j, fs::Permissions::from_mode(0o620)))
                as Box<dyn Fn(&Path) -> io::Result<()>>,
        ),
        (
            "world-writable",
            "writable by others",
            Box::new(|j: &Path| fs::set_permissions(j, fs::Permissions::from_mode(0o602))),
        ),
        (
            "hard-linked",
            "2 hard links",
            Box::new(|j: &Path| fs::hard_link(j, j.with_extension("other"))),
        ),
        (
            "too large",
            "more than the",
            Box::new(|j: &Path| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(j)?
                    .set_len(MAX_JOURNAL_LEN + 1)
            }),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let image = interrupted_update(dir.path(), None);
        spoil(&journal_of(&image)).unwrap();
        let started = Instant::now();
        let e = SifImage::open(&image, OpenMode::ReadWrite).unwrap_err();
        refused(e, &image, why);
        assert!(
            started.elapsed() < PROMPT,
            "{what}: refused without reading it"
        );
        assert_eq!(fs::read(&image).unwrap(), read_upstream(SIGNED1), "{what}");
        SifImage::open(&image, OpenMode::ReadOnly).unwrap();
    }
}

#[test]
fn a_fifo_or_a_link_at_the_journal_name_never_blocks_nor_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    fs::write(&image, read_upstream(SIGNED1)).unwrap();
    let journal = journal_of(&image);
    let victim = dir.path().join("victim");
    fs::write(&victim, b"not to be touched").unwrap();

    for (what, why, plant) in [
        (
            "a FIFO",
            "FIFO",
            Box::new(|j: &Path| {
                let c = std::ffi::CString::new(j.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: mkfifo with a NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }) as Box<dyn Fn(&Path)>,
        ),
        (
            "a link to /dev/zero",
            "symbolic link",
            Box::new(|j: &Path| std::os::unix::fs::symlink("/dev/zero", j).unwrap()),
        ),
        (
            "a link to the image",
            "symbolic link",
            Box::new(|j: &Path| std::os::unix::fs::symlink("image.oci.sif", j).unwrap()),
        ),
        (
            "a link to another file",
            "symbolic link",
            Box::new(|j: &Path| std::os::unix::fs::symlink(&victim, j).unwrap()),
        ),
    ] {
        plant(&journal);
        // Every way in returns at once: read-only opens read the image as it is,
        // writers refuse.
        for flag in ["--inspect", "--verify"] {
            let o = run_on(flag, &image);
            assert!(o.success(), "{what}, {flag}: {o:?}");
            assert!(
                o.stderr.contains("ignoring it"),
                "{what}, {flag}: {}",
                o.stderr
            );
        }
        let o = run_on("--recover", &image);
        assert_eq!(o.status.code(), Some(1), "{what}: {o:?}");
        assert!(o.stderr.contains(why), "{what}: {}", o.stderr);
        let e = SifImage::open(&image, OpenMode::ReadWrite).unwrap_err();
        refused(e, &image, why);
        assert_eq!(fs::read(&image).unwrap(), read_upstream(SIGNED1), "{what}");
        assert_eq!(fs::read(&victim).unwrap(), b"not to be touched", "{what}");
        fs::remove_file(&journal).unwrap();
    }
}

#[test]
fn an_update_never_writes_through_a_file_planted_at_the_journal_name() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    fs::write(&image, read_upstream(SIGNED1)).unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"not to be touched").unwrap();
    let mut oci = OciSif::open(&image, OpenMode::ReadWrite).unwrap();
    let journal = journal_of(&image);
    let files = second_signature();

    // Planted after the image was opened, as while it is mounted.
    for (what, plant) in [
        (
            "a link to another file",
            Box::new(|j: &Path| std::os::unix::fs::symlink(&victim, j))
                as Box<dyn Fn(&Path) -> io::Result<()>>,
        ),
        (
            "a link to the image",
            Box::new(|j: &Path| std::os::unix::fs::symlink("image.oci.sif", j)),
        ),
        (
            "a regular file",
            Box::new(|j: &Path| fs::write(j, b"planted")),
        ),
    ] {
        plant(&journal).unwrap();
        let a = prepare(&oci, &files).unwrap().expect("a complete drop");
        let e = attach(&mut oci, &a).unwrap_err();
        assert!(e.to_string().contains("did not write"), "{what}: {e}");
        assert_eq!(fs::read(&image).unwrap(), read_upstream(SIGNED1), "{what}");
        assert_eq!(fs::read(&victim).unwrap(), b"not to be touched", "{what}");
        fs::remove_file(&journal).unwrap();
        // The image is still whole and usable.
        drop(oci);
        oci = OciSif::open(&image, OpenMode::ReadWrite).unwrap();
    }
    let a = prepare(&oci, &files).unwrap().expect("a complete drop");
    attach(&mut oci, &a).unwrap();
    assert_bytes_eq(
        &fs::read(&image).unwrap(),
        &read_upstream(SIGNED2),
        "attached",
    );
    assert!(!journal.exists());
}

#[test]
fn a_journal_is_never_applied_to_a_file_put_in_the_image_s_place() {
    let dir = tempfile::tempdir().unwrap();
    let other = read_upstream(OTHER);

    // Renamed over (a new inode), as `singularity pull --force` or rsync leave it.
    let image = interrupted_update(dir.path(), None);
    let journal = journal_of(&image);
    let record = fs::read(&journal).unwrap();
    let replacement = dir.path().join("new.sif");
    fs::write(&replacement, &other).unwrap();
    fs::rename(&replacement, &image).unwrap();
    let e = SifImage::recover(&image).unwrap_err();
    let msg = refused(e, &image, "the image was replaced");
    assert!(msg.contains("inode"), "{msg}");
    assert!(msg.contains("remove the journal"), "says what to do: {msg}");
    let e = SifImage::open(&image, OpenMode::ReadWrite).unwrap_err();
    refused(e, &image, "the image was replaced");
    let o = run_on("--recover", &image);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("the image was replaced"), "{}", o.stderr);
    // A reader reads the new file: the journal is not about it.
    OciSif::open(&image, OpenMode::ReadOnly).unwrap();
    assert_eq!(fs::read(&image).unwrap(), other, "nothing written");
    assert_eq!(fs::read(&journal).unwrap(), record, "the journal is kept");

    // Rewritten in place (the same inode), as `cp` over it leaves it.
    fs::remove_file(&journal).unwrap();
    let image = interrupted_update(dir.path(), None);
    fs::write(&image, &other).unwrap();
    let e = SifImage::recover(&image).unwrap_err();
    refused(e, &image, "rewritten");
    assert_eq!(fs::read(&image).unwrap(), other, "nothing written");

    // Put back exactly as it was: the journal is of this file in this state again, and
    // completes the update.
    fs::write(&image, read_upstream(SIGNED1)).unwrap();
    assert_recovered(&image);
}

#[test]
fn the_journal_lies_beside_the_image_whatever_link_it_is_opened_through() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link.sif");
    std::os::unix::fs::symlink(dir.path().join("image.oci.sif"), &link).unwrap();

    // Interrupted while opened through the link.
    let image = interrupted_update(dir.path(), Some(&link));
    assert_eq!(
        fs::read_dir(elsewhere.path()).unwrap().count(),
        1,
        "nothing beside the link"
    );
    assert_eq!(journal_of(&link), journal_of(&image));
    assert_eq!(
        journal_of(&image),
        dir.path()
            .canonicalize()
            .unwrap()
            .join("image.oci.sif.sifmount-journal")
    );
    // Opened by its real name, the image shows it has an update to finish...
    let e = SifImage::open(&image, OpenMode::ReadOnly).unwrap_err();
    assert!(matches!(e.kind(), SifError::PendingUpdate { .. }), "{e}");
    // ...and through the link too, which a read-write open finishes.
    let e = SifImage::open(&link, OpenMode::ReadOnly).unwrap_err();
    assert!(matches!(e.kind(), SifError::PendingUpdate { .. }), "{e}");
    SifImage::open(&link, OpenMode::ReadWrite).unwrap();
    assert_bytes_eq(
        &fs::read(&image).unwrap(),
        &read_upstream(SIGNED2),
        "completed",
    );
    assert!(!journal_of(&image).exists());
}

#[test]
fn an_image_with_two_hard_links_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    fs::write(&image, read_upstream(SIGNED1)).unwrap();
    let second = elsewhere.path().join("second.sif");
    fs::hard_link(&image, &second).unwrap();
    for name in [&image, &second] {
        let e = SifImage::open(name, OpenMode::ReadWrite).unwrap_err();
        assert!(matches!(e.kind(), SifError::HardLinked { links: 2 }), "{e}");
        assert!(e.to_string().contains("read-only"), "says what to do: {e}");
        SifImage::open(name, OpenMode::ReadOnly).unwrap();
    }
    fs::remove_file(&second).unwrap();
    SifImage::open(&image, OpenMode::ReadWrite).unwrap();
}

#[test]
fn a_journal_store_removes_only_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.oci.sif");
    fs::write(&image, b"x").unwrap();
    let journal = FileJournal::for_image(&image).unwrap();
    journal.store(b"first").unwrap();
    journal.store(b"second").unwrap();
    assert_eq!(fs::read(journal.path()).unwrap(), b"second");
    // Replaced behind its back: neither overwritten nor removed.
    fs::remove_file(journal.path()).unwrap();
    fs::write(journal.path(), b"someone else's").unwrap();
    let e = journal.store(b"third").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    journal.clear().unwrap();
    assert_eq!(fs::read(journal.path()).unwrap(), b"someone else's");
}
