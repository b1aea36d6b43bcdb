//! A mounted image's file and journal against someone who shares its directory, through
//! real mounts: a link or FIFO planted at the journal's name while mounted is neither
//! written through nor waited on; an image renamed over while mounted stops every write
//! (ESTALE and an `.error` file) instead of losing attaches to the replaced file, while a
//! new mount of the new file writes it; an image with two hard links is mounted
//! read-only only. (Killing a mount made through a link mid-update is in
//! tests/mount/crash_mount.rs.)
//!
//! Needs /dev/fuse and fusermount3; fails, saying so, when either is missing.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::mounted::{write_close, Mode, Mount};
use crate::common::{self, images, mounted};
use sifmount::cosign::discover;
use sifmount::oci::OciSif;
use sifmount::sif::{journal_path, Digest, OpenMode};

/// Any well-formed base64 will do: attaching does not verify signatures.
const SIGNATURE: &str =
    "MEYCIQCvk/Hm0uRosi3yQQ4T5TnBkI0MFdydeKtVpDhA5IatGgIhAJ0DgXgf9qKP/sQqdCaSIff3tmm3rS5PjANp3WCG/bJ4";
/// Nothing here may block: a refusal comes at once.
const PROMPT: Duration = Duration::from_secs(20);

fn payload(target: &Digest, n: usize) -> Vec<u8> {
    common::simple_signing(target, &format!(r#"{{"creator":"journal test","n":{n}}}"#))
}

/// Attaches signature `n` through the mount; the result of closing the `.sig`.
fn attach(m: &Mount, target: &Digest, n: usize) -> std::io::Result<()> {
    write_close(&m.path(&format!("cosign/p{n}")), &payload(target, n))?;
    write_close(&m.path(&format!("cosign/p{n}.sig")), SIGNATURE.as_bytes())
}

fn signature_payloads(path: &Path) -> Vec<Digest> {
    let oci = OciSif::open(path, OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    common::signature_payloads(&discover(&oci))
}

#[test]
fn a_link_or_fifo_planted_at_the_journal_name_while_mounted_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (path, target) = images::demo_image_at(dir.path(), "image.oci.sif", 8);
    let victim = dir.path().join("victim");
    fs::write(&victim, b"not to be touched").unwrap();
    let journal = journal_path(&path).unwrap();
    let m = Mount::new(&path, Mode::Foreground, &[]);

    for (n, (what, plant)) in [
        (
            "a link to another file",
            Box::new(|j: &Path| std::os::unix::fs::symlink(&victim, j).unwrap())
                as Box<dyn Fn(&Path)>,
        ),
        (
            "a link to the image",
            Box::new(|j: &Path| std::os::unix::fs::symlink("image.oci.sif", j).unwrap()),
        ),
        (
            "a FIFO",
            Box::new(|j: &Path| {
                let c = std::ffi::CString::new(j.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: mkfifo with a NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let before = fs::read(&path).unwrap();
        plant(&journal);
        let started = Instant::now();
        let e = attach(&m, &target, n).expect_err(what);
        assert!(started.elapsed() < PROMPT, "{what}: refused at once");
        let reason = fs::read_to_string(m.path(&format!("cosign/p{n}.error"))).unwrap();
        assert!(reason.contains("did not write"), "{what}: {e}: {reason}");
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "{what}: the image is untouched"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"not to be touched", "{what}");
        // The mount goes on serving.
        assert!(fs::read_dir(m.path("cosign")).unwrap().count() > 0);
        fs::remove_file(&journal).unwrap();
    }
    // With the name free again, attaches go through.
    attach(&m, &target, 10).unwrap();
    m.unmount();
    assert!(signature_payloads(&path).contains(&Digest::of(&payload(&target, 10))));
    assert!(!journal.exists());
    assert_eq!(fs::read(&victim).unwrap(), b"not to be touched");
}

#[test]
fn renaming_another_image_over_a_mounted_one_stops_its_writes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, target) = images::demo_image_at(dir.path(), "image.oci.sif", 8);
    let first = Mount::new(&path, Mode::Foreground, &[]);
    attach(&first, &target, 1).unwrap();

    // `mv new.sif image.oci.sif`, as `singularity pull --force` or rsync do it.
    let (new, new_target) = images::demo_image_at(dir.path(), "new.sif", 8);
    let replacement = fs::read(&new).unwrap();
    fs::rename(&new, &path).unwrap();

    let e = attach(&first, &target, 2).expect_err("an attach to the replaced file");
    assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}");
    let reason = fs::read_to_string(first.path("cosign/p2.error")).unwrap();
    assert!(reason.contains("renamed or copied over"), "{reason}");
    assert_eq!(
        fs::read(&path).unwrap(),
        replacement,
        "the new file is untouched"
    );

    // The path now names a file nobody holds: a new mount writes it, and the first
    // mount still refuses, so the two never share the journal's name.
    let second = Mount::new(&path, Mode::Foreground, &[]);
    attach(&second, &new_target, 3).unwrap();
    let e = attach(&first, &target, 4).expect_err("the first mount still refuses");
    assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}");
    second.unmount();
    first.unmount();
    let found = signature_payloads(&path);
    assert_eq!(found, vec![Digest::of(&payload(&new_target, 3))]);
}

#[test]
fn an_image_with_two_hard_links_mounts_read_only_only() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let (path, _) = images::demo_image_at(dir.path(), "image.oci.sif", 8);
    fs::hard_link(&path, elsewhere.path().join("second.sif")).unwrap();
    let mp = tempfile::tempdir().unwrap();
    let o = mounted::run(
        Command::new(mounted::sifmount_bin())
            .arg(&path)
            .arg(mp.path())
            .env_remove("RUST_LOG"),
        PROMPT,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stderr.contains("2 hard links"), "{}", o.stderr);
    assert!(!mounted::is_mounted(mp.path()));
    let m = Mount::new(&path, Mode::Foreground, &["-o", "ro"]);
    assert!(m.path("index.json").exists());
    m.unmount();
}
