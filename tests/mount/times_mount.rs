//! Times a mount shows (the man page, THE TREE): where the SIF records no time (0, or Go's
//! zero time as every OCI-SIF oci-tools writes has), every file and directory shows the
//! image file's own modification time, so `ls -l`, `tar` and `cp -a` see it; where the SIF
//! records a time, that time.
//!
//! Needs /dev/fuse, `fusermount3`, coreutils (`cp`, `ls`) and `tar`; fails, saying how to
//! install what is missing, rather than skipping.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sifmount::sif::{OpenMode, SifImage};

use crate::common::mounted::{assert_ok, cp, ls, run_tool, Mode, Mount};
use crate::common::{upstream, writable_copy_of};

/// 2023-11-14 22:13:20 UTC: the modification time given to a copy of an image.
const KNOWN: i64 = 1_700_000_000;

/// Go's zero time, in Unix seconds: what zero-time SIFs hold.
const GO_ZERO: i64 = -62_135_596_800;

fn mtime(path: &Path) -> i64 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()))
        .mtime()
}

/// hello-world signed with cosign, as oci-tools writes it (zero times everywhere), copied
/// and given a known modification time: every path shows that time, and `ls -l`, `tar`
/// and `cp -a` out of the mount carry it.
#[test]
fn zero_times_show_the_image_files_modification_time() {
    let tmp = tempfile::tempdir().unwrap();
    let image = writable_copy_of(
        &upstream("generated/hello-world-cosign-manifest.oci.sif"),
        tmp.path(),
        "hello.oci.sif",
    );
    let sif = SifImage::open(&image, OpenMode::ReadOnly).unwrap();
    assert_eq!(
        sif.header().modified_at,
        GO_ZERO,
        "the fixture has zero times"
    );
    assert!(
        sif.descriptors().all(|(_, d)| d.modified_at == GO_ZERO),
        "every object of the fixture has a zero time"
    );
    drop(sif);
    std::fs::File::options()
        .write(true)
        .open(&image)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(KNOWN as u64)))
        .unwrap_or_else(|e| panic!("cannot set the time of {}: {e}", image.display()));

    let m = Mount::new(&image, Mode::Daemon, &["-o", "ro"]);
    let name = ls(&m.path("images")).remove(0);
    let entry = ls(&m.path("cosign")).remove(0);
    let blob = ls(&m.path("blobs/sha256")).remove(0);
    let object = ls(&m.path("sif/objects")).remove(0);
    for rel in [
        "",
        "index.json",
        "oci-layout",
        "blobs",
        &format!("blobs/sha256/{blob}"),
        &format!("sif/objects/{object}"),
        "sif/header.json",
        &format!("images/{name}"),
        &format!("images/{name}/manifest.json"),
        &format!("images/{name}/index.json"),
        &format!("images/{name}/layers/0"),
        &format!("cosign/{entry}"),
        &format!("cosign/{entry}/payload"),
    ] {
        assert_eq!(mtime(&m.path(rel)), KNOWN, "mtime of /{rel}");
    }

    let out = run_tool(
        "ls",
        "coreutils",
        &[
            &"-l",
            &"--time-style=+%Y-%m-%d",
            &m.path(&format!("images/{name}")),
        ],
    );
    assert_ok(&out, "ls -l", &m);
    assert!(
        out.stdout.contains(" 2023-11-14 manifest.json"),
        "ls -l shows the image file's date: {}",
        out.stdout
    );

    let archive = tmp.path().join("images.tar");
    let out = run_tool(
        "tar",
        "tar",
        &[
            &"-C",
            &m.mountpoint,
            &"-cf",
            &archive,
            &"images",
            &"index.json",
        ],
    );
    assert_ok(&out, "tar -c", &m);
    let out = run_tool("tar", "tar", &[&"--utc", &"--full-time", &"-tvf", &archive]);
    assert_ok(&out, "tar -tv", &m);
    for line in out.stdout.lines() {
        assert!(
            line.contains(" 2023-11-14 22:13:20 "),
            "tar lists the image file's time: {line}"
        );
    }

    let copy = tmp.path().join("manifest.json");
    let out = cp(&[
        &"-a",
        &m.path(&format!("images/{name}/manifest.json")),
        &copy,
    ]);
    assert_ok(&out, "cp -a", &m);
    assert_eq!(mtime(&copy), KNOWN, "cp -a keeps the time");
    m.unmount();
}

/// Images whose SIF records times show them, not the file's: a native SIF
/// (`one-object-time.sif`, 2020-06-30) and SingularityCE's empty OCI-SIF.
#[test]
fn recorded_times_are_shown_as_recorded() {
    let image = upstream("sylabs-sif/test/images/one-object-time.sif");
    let sif = SifImage::open(&image, OpenMode::ReadOnly).unwrap();
    let header = sif.header().modified_at;
    assert_eq!(
        header, 1_593_475_316,
        "2020-06-30 00:01:56 UTC, as siftool says"
    );
    let object = sif.descriptor_by_id(1).unwrap().modified_at;
    assert_ne!(mtime(&image), header, "the file's own time differs");
    let m = Mount::new(&image, Mode::Daemon, &["-o", "ro"]);
    assert_eq!(
        mtime(&m.mountpoint),
        header,
        "the root shows the header's time"
    );
    assert_eq!(mtime(&m.path("sif/header.json")), header);
    assert_eq!(mtime(&m.path("sif/objects/1-data.json")), object);
    m.unmount();

    let image = upstream("sylabs-singularity/test/images/empty.oci.sif");
    let sif = SifImage::open(&image, OpenMode::ReadOnly).unwrap();
    let header = sif.header().modified_at;
    assert!(header > 0, "empty.oci.sif records its time");
    assert_ne!(mtime(&image), header, "the file's own time differs");
    let root_index = sif
        .descriptors()
        .map(|(_, d)| d.modified_at)
        .next()
        .expect("the image has its root index");
    let m = Mount::new(&image, Mode::Daemon, &["-o", "ro"]);
    assert_eq!(mtime(&m.mountpoint), header);
    assert_eq!(mtime(&m.path("oci-layout")), header);
    assert_eq!(mtime(&m.path("index.json")), root_index);
    m.unmount();
}
