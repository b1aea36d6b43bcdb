//! `/sif/objects/` names native objects `<id>-<stored name>` (the man page, THE TREE):
//! the names `siftool info` prints, made one safe path component, with the ID before
//! them; an object without a usable name keeps `<id>-<kind>`. Checked on the upstream
//! native SIFs against `siftool info` and `siftool dump`.
//!
//! Needs /dev/fuse, `fusermount3` and `siftool`; fails, saying how to install what is
//! missing, rather than skipping.

use std::path::Path;

use crate::common::mounted::{ls, read, run_tool, Mode, Mount};
use crate::common::{assert_bytes_eq, upstream};

/// The IDs `siftool list` prints.
fn siftool_ids(image: &Path) -> Vec<u32> {
    let out = run_tool("siftool", "siftool", &[&"list", &image]);
    assert!(
        out.success(),
        "siftool list {}: {}",
        image.display(),
        out.stderr
    );
    out.stdout
        .lines()
        .filter_map(|l| l.split('|').next()?.trim().parse().ok())
        .collect()
}

/// The `Name:` `siftool info ID` prints, when it prints one.
fn siftool_name(image: &Path, id: u32) -> Option<String> {
    let out = run_tool("siftool", "siftool", &[&"info", &id.to_string(), &image]);
    assert!(
        out.success(),
        "siftool info {id} {}: {}",
        image.display(),
        out.stderr
    );
    out.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Name:"))
        .map(|n| n.trim().to_string())
}

/// SingularityCE's busybox images: each object is named by what siftool calls it; the
/// definition file, stored as `.`, and the signature, stored without a name, are named
/// by their kind.
#[test]
fn native_objects_are_named_by_their_stored_names() {
    let image = upstream("sylabs-singularity/e2e/testdata/busybox_amd64.sif");
    let m = Mount::new(&image, Mode::Daemon, &["-o", "ro"]);
    assert_eq!(
        ls(&m.path("sif/objects")),
        [
            "1-deffile",
            "2-inspect-metadata.json",
            "3-oci-config.json",
            "4-squashfs-275937245",
            "5-signature",
        ]
    );
    m.unmount();

    let mut named = 0;
    for rel in [
        "sylabs-singularity/e2e/testdata/busybox_amd64.sif",
        "sylabs-singularity/e2e/testdata/busybox_arm64.sif",
        "sylabs-singularity/e2e/testdata/busybox_ppc64le.sif",
        "sylabs-sif/test/images/one-object-time.sif",
        "sylabs-sif/test/images/one-group-signed-pgp.sif",
        "sylabs-sif/test/images/two-groups.sif",
    ] {
        let image = upstream(rel);
        let m = Mount::new(&image, Mode::Daemon, &["-o", "ro"]);
        let listed = ls(&m.path("sif/objects"));
        let ids = siftool_ids(&image);
        assert_eq!(listed.len(), ids.len(), "{rel}: one file per object");
        let tmp = tempfile::tempdir().unwrap();
        for id in ids {
            let prefix = format!("{id}-");
            let file = listed
                .iter()
                .find(|n| n.starts_with(&prefix))
                .unwrap_or_else(|| panic!("{rel}: no /sif/objects file for ID {id}: {listed:?}"));
            match siftool_name(&image, id).filter(|n| n != "." && !n.is_empty()) {
                Some(name) => {
                    let safe: String = name
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    assert_eq!(*file, format!("{id}-{safe}"), "{rel}: object {id}");
                    named += 1;
                }
                None => assert!(
                    !file[prefix.len()..].is_empty(),
                    "{rel}: object {id} without a name says its kind: {file}"
                ),
            }
            let dumped = tmp.path().join(format!("{id}.bin"));
            let out = std::process::Command::new("siftool")
                .args(["dump", &id.to_string()])
                .arg(&image)
                .stdout(std::fs::File::create(&dumped).unwrap())
                .status()
                .expect("run siftool dump");
            assert!(out.success(), "siftool dump {id} {rel}");
            assert_bytes_eq(
                &read(&m.path(&format!("sif/objects/{file}"))),
                &read(&dumped),
                &format!("{rel}: /sif/objects/{file}"),
            );
        }
        m.unmount();
    }
    assert!(named >= 10, "the fixtures hold named objects: {named}");
}
