//! Copying entries between mounted images (the man page, ATTACHING, "Copying entries
//! between images"): `cp -r MP1/cosign/ENTRY MP2/cosign/` always works. Under a free
//! name it is a drop like any other; under a name the second image already has, the
//! files written into that entry's directory are a copy of another entry, which
//! becomes the next entry for its target, changes nothing when the image holds that
//! layer already, and, when refused, says why in the directory's `error` file.
//!
//! The expected bytes are SingularityCE's: the upstream images with one and with two
//! signatures of the same target.

use std::fs;
use std::path::Path;

use crate::common::mounted::{assert_ok, cp, ls, read, run_tool, Mode, Mount};
use crate::common::{self, assert_bytes_eq, upstream};

/// A writable copy of SingularityCE's image with two signatures, mounted, with its first
/// signature removed: what it lists as `sig-…-1` is then upstream's second signature,
/// under the name the image with one signature uses for its first.
fn second_signature_as_first(dir: &Path) -> (Mount, String) {
    let image = common::writable_copy_of(
        &upstream("generated/squashfs-image.signed2.oci.sif"),
        dir,
        "signed2.oci.sif",
    );
    let m = Mount::new(&image, Mode::Foreground, &[]);
    let listed = ls(&m.path("cosign"));
    assert_eq!(listed.len(), 2, "{listed:?}");
    let out = run_tool(
        "rm",
        "coreutils",
        &[&"-r", &m.path("cosign").join(&listed[0])],
    );
    assert_ok(&out, &format!("rm -r MP/cosign/{}", listed[0]), &m);
    assert_eq!(ls(&m.path("cosign")), [listed[0].clone()], "renumbered");
    (m, listed[0].clone())
}

/// `cp -r` of an entry onto an image with an entry of that name: the copy becomes the
/// image's second signature, and the file is byte-identical to SingularityCE's image with
/// both; copying it again (into the new entry or under the taken name) changes nothing.
#[test]
fn a_copy_under_a_taken_name_becomes_the_next_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (source, name) = second_signature_as_first(dir.path());
    let signed1 = common::writable_copy_of(
        &upstream("generated/squashfs-image.signed1.oci.sif"),
        dir.path(),
        "signed1.oci.sif",
    );
    let m = Mount::new(&signed1, Mode::Foreground, &[]);
    let cosign = m.path("cosign");
    assert_eq!(
        ls(&cosign),
        std::slice::from_ref(&name),
        "the name is taken"
    );
    let first_payload = read(&cosign.join(&name).join("payload"));
    assert_ne!(
        first_payload,
        read(&source.path("cosign").join(&name).join("payload")),
        "the two entries of that name differ"
    );

    let out = cp(&[&"-r", &source.path("cosign").join(&name), &cosign]);
    assert_ok(&out, &format!("cp -r MP1/cosign/{name} MP2/cosign/"), &m);
    let next = format!(
        "{}-2",
        name.strip_suffix("-1").expect("a first entry ends in -1")
    );
    assert_eq!(
        ls(&cosign),
        [name.clone(), next.clone()],
        "log:\n{}",
        m.log_text()
    );
    for file in ["payload", "signature", "annotations"] {
        assert_eq!(
            read(&cosign.join(&next).join(file)),
            read(&source.path("cosign").join(&name).join(file)),
            "{next}/{file} is the copied entry's"
        );
    }
    assert_eq!(
        read(&cosign.join(&name).join("payload")),
        first_payload,
        "{name} is still the image's own entry"
    );
    m.unmount();
    assert_bytes_eq(
        &read(&signed1),
        &read(&upstream("generated/squashfs-image.signed2.oci.sif")),
        "signed1 with signed2's second signature copied in",
    );

    // The same layer again, both ways: nothing changes.
    let bytes = read(&signed1);
    let m = Mount::new(&signed1, Mode::Foreground, &[]);
    let cosign = m.path("cosign");
    let out = cp(&[&"-r", &source.path("cosign").join(&name), &cosign]);
    assert_ok(
        &out,
        "copying the same entry again under the taken name",
        &m,
    );
    let into_next = format!("{}/.", source.path("cosign").join(&name).display());
    let out = cp(&[&"-r", &into_next, &cosign.join(&next)]);
    assert_ok(&out, "copying the same entry into its copy", &m);
    assert_eq!(ls(&cosign), [name.clone(), next.clone()]);
    m.unmount();
    source.unmount();
    assert_bytes_eq(
        &read(&signed1),
        &bytes,
        "after copying the same layer again",
    );
}

/// Files of an entry whose target is not in the image, copied into an entry of the image:
/// refused at close, the directory's `error` says which file and why, the image and the
/// entry's own files stay as they were, and removing `error` gives the copy up.
#[test]
fn a_refused_copy_says_why_in_the_entry_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The hello-world image's signature: its target is not the squashfs image.
    let other = Mount::new(
        &upstream("generated/hello-world-cosign-manifest.oci.sif"),
        Mode::Foreground,
        &["-o", "ro"],
    );
    let foreign = ls(&other.path("cosign"))
        .into_iter()
        .find(|n| n.starts_with("sig-"))
        .expect("the hello-world image has a signature");
    let foreign = other.path("cosign").join(foreign);

    let image = common::writable_copy_of(
        &upstream("generated/squashfs-image.signed1.oci.sif"),
        dir.path(),
        "signed1.oci.sif",
    );
    let bytes = read(&image);
    let m = Mount::new(&image, Mode::Foreground, &[]);
    let entry_dir = m.path("cosign").join(&ls(&m.path("cosign"))[0]);
    let own_files: Vec<(String, Vec<u8>)> = ls(&entry_dir)
        .into_iter()
        .map(|f| (f.clone(), read(&entry_dir.join(&f))))
        .collect();

    let out = cp(&[
        &foreign.join("payload"),
        &foreign.join("signature"),
        &entry_dir,
    ]);
    assert!(!out.success(), "cp of a foreign entry's files succeeded");
    let error = fs::read_to_string(entry_dir.join("error")).unwrap_or_else(|e| {
        panic!(
            "no error file in {}: {e}; log:\n{}",
            entry_dir.display(),
            m.log_text()
        )
    });
    assert!(
        error.contains("payload") && error.contains("not a manifest or index in this image"),
        "the error names the file and the problem: {error:?}"
    );
    assert!(error.ends_with('\n'), "{error:?}");
    fs::remove_file(entry_dir.join("error")).expect("rm of the error file");
    let after: Vec<(String, Vec<u8>)> = ls(&entry_dir)
        .into_iter()
        .map(|f| (f.clone(), read(&entry_dir.join(&f))))
        .collect();
    assert_eq!(after, own_files, "the entry shows its own files again");
    m.unmount();
    other.unmount();
    assert_bytes_eq(&read(&image), &bytes, "after a refused copy");
}
