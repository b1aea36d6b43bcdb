//! Never losing a signature, through real mounts: `kill -9` of sifmount in the
//! middle of 100 concurrent attaches, and a file system that fills up during an attach.
//!
//! Needs /dev/fuse, `fusermount3` and root (the full-disk test mounts a small tmpfs);
//! fails, saying so, when one is missing.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::mounted::{write_close, Mode, Mount};
use crate::common::{self, images};
use sifmount::cosign::discover;
use sifmount::oci::OciSif;
use sifmount::sif::{Digest, OpenMode};

/// Any well-formed base64 will do: attaching does not verify signatures.
const SIGNATURE: &str =
    "MEYCIQCvk/Hm0uRosi3yQQ4T5TnBkI0MFdydeKtVpDhA5IatGgIhAJ0DgXgf9qKP/sQqdCaSIff3tmm3rS5PjANp3WCG/bJ4";

fn payload(target: &Digest, n: usize) -> Vec<u8> {
    common::simple_signing(
        target,
        &format!(r#"{{"creator":"crash test","timestamp":{n}}}"#),
    )
}

/// The payload digests of every signature layer in the image, after it has been opened
/// for writing (which finishes an interrupted update).
fn signature_payloads(path: &Path) -> HashSet<Digest> {
    let oci = OciSif::open(path, OpenMode::ReadWrite)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        oci.verify_blobs().unwrap().is_empty(),
        "every blob hashes to its digest"
    );
    let d = discover(&oci);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    common::signature_payloads(&d).into_iter().collect()
}

/// Mounted through a symbolic link in another directory: the journal an interrupted
/// update leaves is beside the image itself, where opening it by its own name finds it.
#[test]
fn kill_9_during_100_concurrent_attaches_loses_no_attach_that_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (path, target) = images::demo_image_at(dir.path(), "image.oci.sif", 8);
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link.sif");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let mut m = Mount::new(&link, Mode::Foreground, &[]);
    let cosign = m.path("cosign");
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(101));
    let workers: Vec<_> = (0..100)
        .map(|i| {
            let (cosign, done, start) = (cosign.clone(), done.clone(), start.clone());
            let bytes = payload(&target, i);
            std::thread::spawn(move || {
                start.wait();
                let ok = write_close(&cosign.join(format!("p{i}")), &bytes).is_ok()
                    && write_close(&cosign.join(format!("p{i}.sig")), SIGNATURE.as_bytes()).is_ok();
                if ok {
                    done.fetch_add(1, Ordering::SeqCst);
                    Some(Digest::of(&bytes))
                } else {
                    None
                }
            })
        })
        .collect();
    start.wait();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::SeqCst) < 25 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = m.pid();
    // SAFETY: kill(2) of the sifmount this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let succeeded: Vec<Digest> = workers
        .into_iter()
        .filter_map(|w| w.join().expect("a worker panicked"))
        .collect();
    let _ = m.child_mut().wait();
    drop(m); // unmounts the dead mount
    println!(
        "{} of 100 attaches returned success before kill -9",
        succeeded.len()
    );
    assert!(
        succeeded.len() >= 25 && succeeded.len() < 100,
        "the kill came in the middle: {} succeeded",
        succeeded.len()
    );

    let beside_link: Vec<_> = fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside_link, ["link.sif"], "nothing is left beside the link");
    let found = signature_payloads(&path);
    for d in &succeeded {
        assert!(found.contains(d), "attach {d} returned success but is gone");
    }
    // Every signature in the image is one of the 100 (some may have landed just as the
    // process died, before their close could return).
    let all: HashSet<Digest> = (0..100).map(|i| Digest::of(&payload(&target, i))).collect();
    assert!(found.is_subset(&all));

    // The image mounts again and takes more.
    let m = Mount::new(&path, Mode::Foreground, &[]);
    let extra = payload(&target, 1000);
    write_close(&m.path("cosign/extra"), &extra).unwrap();
    write_close(&m.path("cosign/extra.sig"), SIGNATURE.as_bytes()).unwrap();
    m.unmount();
    assert!(signature_payloads(&path).contains(&Digest::of(&extra)));
}

/// statvfs(2) free bytes for unprivileged writers.
fn free_bytes(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs fills the struct we pass; zeroed is a valid initial value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail * st.f_frsize
}

/// A tmpfs of `size` bytes, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(size: u64) -> SmallFs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a small tmpfs and must run as root (CI runs it so)"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs { dir }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_file_system_fails_the_attach_with_enospc_and_keeps_the_old_image() {
    let fs_ = SmallFs::new(1 << 20);
    let (path, target) = images::demo_image_at(fs_.dir.path(), "image.oci.sif", 8);
    let before = fs::read(&path).unwrap();
    // Leave no room at all: the journal, or the image growing past its last page, fails.
    let filler = fs_.dir.path().join("filler");
    let room = free_bytes(fs_.dir.path());
    fs::write(&filler, vec![0u8; room as usize]).unwrap();

    let m = Mount::new(&path, Mode::Foreground, &[]);
    let p = payload(&target, 1);
    write_close(&m.path("cosign/p"), &p).unwrap();
    let e = write_close(&m.path("cosign/p.sig"), SIGNATURE.as_bytes()).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOSPC),
        "{e}; log: {}",
        m.log_text()
    );
    let reason = fs::read_to_string(m.path("cosign/p.error")).unwrap();
    assert!(reason.contains("No space left"), "{reason}");
    m.unmount();
    assert_eq!(
        fs::read(&path).unwrap(),
        before,
        "the image is exactly as it was"
    );
    let leftovers: Vec<_> = fs::read_dir(fs_.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "image.oci.sif" && n != "filler")
        .collect();
    assert!(leftovers.is_empty(), "nothing left behind: {leftovers:?}");

    // With room again, the same drop attaches.
    fs::remove_file(&filler).unwrap();
    let m = Mount::new(&path, Mode::Foreground, &[]);
    write_close(&m.path("cosign/p"), &p).unwrap();
    write_close(&m.path("cosign/p.sig"), SIGNATURE.as_bytes()).unwrap();
    m.unmount();
    assert!(signature_payloads(&path).contains(&Digest::of(&p)));
}
