//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared test data: `SIFMOUNT_TESTDATA`, or `../shared/testdata` beside the project.
/// A missing directory fails the test with a message saying how to provide it: these
/// tests never skip silently.
pub fn testdata() -> PathBuf {
    let dir = match std::env::var_os("SIFMOUNT_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"),
    };
    assert!(
        dir.join("upstream").is_dir(),
        "test data not found at {}: set SIFMOUNT_TESTDATA to the shared testdata directory \
         (the one holding upstream/ and cosign/)",
        dir.display()
    );
    dir
}

/// A file under `testdata/upstream/`.
pub fn upstream(rel: &str) -> PathBuf {
    testdata().join("upstream").join(rel)
}

/// Reads a file under `testdata/upstream/`, naming it when it is missing.
pub fn read_upstream(rel: &str) -> Vec<u8> {
    let p = upstream(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Compares two byte strings and reports the first difference readably.
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} bytes, expected {}; first difference at offset {first:#x} (got {:02x?}, want {:02x?})",
        got.len(),
        want.len(),
        &got[first..(first + 16).min(got.len())],
        &want[first..(first + 16).min(want.len())],
    );
}

/// Every file below `testdata/upstream/<rel>` (`""` for all), as paths relative to
/// `testdata/upstream`, sorted.
pub fn upstream_files_under(rel: &str) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("walked below the root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = upstream("");
    let mut out = Vec::new();
    walk(&root, &upstream(rel), &mut out);
    out.sort();
    out
}

/// Every file under testdata/upstream that is a SIF (magic at offset 32), sorted.
pub fn upstream_sifs() -> Vec<PathBuf> {
    upstream_files_under("")
        .into_iter()
        .map(|rel| upstream(&rel))
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.len() >= 128 && &b[32..42] == b"SIF_MAGIC\0")
                .unwrap_or(false)
        })
        .collect()
}

/// The newest layer of the `.sig` image of `signed`: its payload and annotations (what
/// each SingularityCE signing step added).
pub fn last_signature_layer(
    signed: &sifmount::oci::OciSif,
) -> (Vec<u8>, std::collections::BTreeMap<String, String>) {
    let root = signed.root_index().expect("the root index parses");
    let sig = root
        .entries()
        .iter()
        .find(|e| e.ref_name().is_some_and(|n| n.ends_with(".sig")))
        .expect("the image has a .sig image");
    let manifest = sifmount::oci::Manifest::parse(&signed.read_blob(&sig.digest).unwrap())
        .expect("the .sig manifest parses");
    let last = manifest.layers.last().expect("the .sig image has a layer");
    (
        signed.read_blob(&last.digest).unwrap(),
        last.annotations.clone().unwrap_or_default(),
    )
}

/// [`last_signature_layer`] of an upstream file.
pub fn upstream_last_signature(rel: &str) -> (Vec<u8>, std::collections::BTreeMap<String, String>) {
    let signed = sifmount::oci::OciSif::open(upstream(rel), sifmount::sif::OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    last_signature_layer(&signed)
}
