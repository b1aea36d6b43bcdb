//! Shared helpers for the integration tests, included by each test crate
//! (`tests/library`, `tests/mount`, `tests/cli`, `tests/hostile`) as its `common` module.
#![allow(dead_code)]

pub mod cosign_sif;
pub mod images;
pub mod lookup;
pub mod mounted;
pub mod oracle;
pub mod replay;

use std::path::{Path, PathBuf};

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

/// `names` listed in directory `path` of a mount or tree, without `/cosign`'s summary
/// files when `path` is `/cosign` (its last component is `cosign`). Tests about the
/// entries compare listings with the entries they expect; the summary files are in every
/// listing of an OCI-SIF's `/cosign`, and tests/library/cosign_summary.rs and
/// tests/mount/summary_mount.rs check them by name, and that the listing has them.
pub fn without_summary(path: impl AsRef<Path>, names: Vec<String>) -> Vec<String> {
    let path = path.as_ref();
    let is_cosign = path.file_name().is_some_and(|n| n == "cosign");
    if !is_cosign {
        return names;
    }
    names
        .into_iter()
        .filter(|n| n != sifmount::tree::SUMMARY_TEXT && n != sifmount::tree::SUMMARY_JSON)
        .collect()
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

/// The newest `.sig` layer of an upstream signed file: its payload and its signature
/// annotation's text.
pub fn upstream_signature_text(rel: &str) -> (Vec<u8>, String) {
    let (payload, annotations) = upstream_last_signature(rel);
    (
        payload,
        annotations[sifmount::cosign::SIGNATURE_ANNOTATION].clone(),
    )
}

/// [`upstream_signature_text`] of a file SingularityCE signed, checking that the
/// signature is the layer's only annotation, as SingularityCE writes it.
pub fn upstream_singularity_signature(rel: &str) -> (Vec<u8>, String) {
    let (payload, annotations) = upstream_last_signature(rel);
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        ["dev.cosignproject.cosign/signature"],
        "{rel}: SingularityCE stores only the signature annotation"
    );
    (
        payload,
        annotations["dev.cosignproject.cosign/signature"].clone(),
    )
}

/// A cosign simple-signing payload about `target` (a digest, `sha256:…`), with an empty
/// docker reference and `optional` (JSON) as its optional part, written compactly as
/// SingularityCE writes it.
pub fn simple_signing(target: &dyn std::fmt::Display, optional: &str) -> Vec<u8> {
    simple_signing_for("", target, optional)
}

/// [`simple_signing`] naming `reference` as the docker reference.
pub fn simple_signing_for(
    reference: &str,
    target: &dyn std::fmt::Display,
    optional: &str,
) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{target}"}},"type":"cosign container image signature"}},"optional":{optional}}}"#
    )
    .into_bytes()
}

/// A file under `testdata/cosign/` (cosign's fixtures: layouts, keys, bundles).
pub fn cosign_data(rel: &str) -> PathBuf {
    testdata().join("cosign").join(rel)
}

/// A public key of the cosign fixtures (`keys/…`).
pub fn cosign_key(rel: &str) -> sifmount::cosign::PublicKey {
    sifmount::cosign::PublicKey::load(&cosign_data(rel)).unwrap_or_else(|e| panic!("{e}"))
}

/// Copies `src` to `dir/name` with mode 0644: upstream files are 0444, and a file without
/// write bits mounts read-only.
pub fn writable_copy_of(src: &Path, dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dst = dir.join(name);
    std::fs::copy(src, &dst)
        .unwrap_or_else(|e| panic!("cp {} {}: {e}", src.display(), dst.display()));
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("chmod 644 {}: {e}", dst.display()));
    dst
}

/// A copy of an upstream image that opens (and mounts) read-write: `dir/image.oci.sif`.
pub fn writable_copy(dir: &Path, rel: &str) -> PathBuf {
    writable_copy_of(&upstream(rel), dir, "image.oci.sif")
}

/// [`writable_copy`] in a new temporary directory, which the caller keeps.
pub fn writable_temp_copy(rel: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = writable_copy(dir.path(), rel);
    (dir, path)
}

/// Fails the test, saying why it needs root, unless it runs as root (CI runs it so).
#[track_caller]
pub fn need_root(why: &str) {
    need_root_saying(&format!("this test must run as root: {why}"));
}

/// Fails the test with `message` unless it runs as root.
#[track_caller]
pub fn need_root_saying(message: &str) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "{message}");
}

/// The error of a failing disk, for storage that fails on purpose.
pub fn eio() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EIO)
}

/// An OCI-SIF held in memory, so that a test can compare the whole file. The test files
/// that use it add the methods of their own in `impl MemOci` blocks.
pub struct MemOci {
    pub storage: std::sync::Arc<sifmount::sif::MemStorage>,
    pub oci: sifmount::oci::OciSif,
}

impl MemOci {
    /// Opens `bytes` read-write.
    pub fn open(bytes: Vec<u8>) -> MemOci {
        let storage = std::sync::Arc::new(sifmount::sif::MemStorage::new(bytes));
        let sif = sifmount::sif::SifImage::from_storage(
            Box::new(storage.clone()),
            sifmount::sif::OpenMode::ReadWrite,
        )
        .unwrap();
        MemOci {
            storage,
            oci: sifmount::oci::OciSif::from_sif(sif).unwrap(),
        }
    }

    /// The whole file as it is now.
    pub fn bytes(&self) -> Vec<u8> {
        self.storage.to_vec()
    }
}

/// The payload digest of every signature layer `discovery` found.
pub fn signature_payloads(discovery: &sifmount::cosign::Discovery) -> Vec<sifmount::sif::Digest> {
    discovery
        .entries
        .iter()
        .filter(|e| e.kind == sifmount::cosign::EntryKind::Signature)
        .map(|e| e.layer.digest)
        .collect()
}
