//! `-o require_signed` in the tree (the man page, CONTENT TRUST): only images with an
//! entry that verifies are under `/images`; blobs only the others use are withheld
//! wherever they appear; blobs shared with a verified image, and everything signatures
//! are made of, stay readable.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{cosign_key, cosign_sif, lookup::tree_names, upstream};
use sifmount::cosign::Trust;
use sifmount::sif::Digest;
use sifmount::tree::{Tree, TreeError, TreeOptions};

const LAYOUT: &str = "sylabs-oci-tools/test/images/hello-world-cosign-manifest";
/// The signed manifest of LAYOUT, and the key its signature and attestation verify with.
const SIGNED: &str = "432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";
const KEY: &str = "keys/singularity-cosign.pub";
const OTHER_KEY: &str = "containers-image/cosign2.pub";

/// The signed fixture plus an unsigned image that shares its config and layer and has a
/// layer of its own; returns the SIF and that layer's digest.
fn signed_and_unsigned(dir: &Path) -> (PathBuf, Digest) {
    let layout = dir.join("layout");
    copy_dir(&upstream(LAYOUT), &layout);
    let blobs = layout.join("blobs/sha256");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(blobs.join(SIGNED)).unwrap()).unwrap();
    let own = b"a layer only the unsigned image has".to_vec();
    let own_digest = Digest::of(&own);
    std::fs::write(blobs.join(own_digest.hex()), &own).unwrap();
    manifest["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "size": own.len(),
        "digest": own_digest.to_string(),
    }));
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = Digest::of(&bytes);
    std::fs::write(blobs.join(digest.hex()), &bytes).unwrap();
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": manifest["mediaType"],
        "size": bytes.len(),
        "digest": digest.to_string(),
        "annotations": {"org.opencontainers.image.ref.name": "unsigned"},
    }));
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let sif = dir.join("two-images.oci.sif");
    cosign_sif::layout_sif(&layout, &sif, false);
    (sif, own_digest)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

fn open(sif: &Path, key: &str, require_signed: bool) -> Tree {
    Tree::open_with(
        sif,
        &TreeOptions {
            trust: Trust::keys(vec![cosign_key(key)]),
            require_signed,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .0
}

/// The whole file at `path`, or why not.
fn read(tree: &Tree, path: &str) -> Result<Vec<u8>, TreeError> {
    let attr = tree.resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    tree.check_file(attr.ino)?;
    let mut buf = vec![0; attr.size as usize];
    let n = tree.read(attr.ino, 0, &mut buf)?;
    assert_eq!(n, buf.len(), "{path}");
    Ok(buf)
}

#[track_caller]
fn assert_withheld(tree: &Tree, path: &str, digest: &str) {
    match read(tree, path) {
        Err(TreeError::Withheld(why)) => {
            let why = why.to_string();
            assert!(
                why.contains(&format!(
                    "blob {digest} is used only by images no signature verifies"
                )),
                "{path}: {why}"
            );
        }
        other => panic!("{path}: {other:?}, expected it withheld"),
    }
}

/// The `/sif/objects/` file holding `bytes`, in a tree that withholds nothing.
fn object_file(tree: &Tree, bytes: &[u8]) -> String {
    tree_names(tree, "sif/objects")
        .into_iter()
        .map(|n| format!("sif/objects/{n}"))
        .find(|p| read(tree, p).unwrap() == bytes)
        .expect("every blob is an object")
}

#[test]
fn require_signed_shows_verified_images_and_withholds_what_only_others_use() {
    let dir = tempfile::tempdir().unwrap();
    let (sif, own) = signed_and_unsigned(dir.path());

    // Without require_signed: both images, every blob readable.
    let tree = open(&sif, KEY, false);
    assert_eq!(
        tree_names(&tree, "images"),
        ["sha256-432f982638b3", "unsigned"]
    );
    let own_bytes = read(&tree, &format!("blobs/sha256/{}", own.hex())).unwrap();
    let own_object = object_file(&tree, &own_bytes);

    let tree = open(&sif, KEY, true);
    assert_eq!(tree_names(&tree, "images"), ["sha256-432f982638b3"]);
    assert_eq!(tree.images().len(), 1);
    assert_eq!(tree.images()[0].verified, Some(2));
    // The unsigned image's own layer and manifest: withheld, in /blobs and /sif/objects.
    assert_withheld(
        &tree,
        &format!("blobs/sha256/{}", own.hex()),
        &own.to_string(),
    );
    assert_withheld(&tree, &own_object, &own.to_string());
    // What it shares with the verified image: readable.
    let signed_image = "images/sha256-432f982638b3";
    read(&tree, &format!("{signed_image}/manifest.json")).unwrap();
    read(&tree, &format!("{signed_image}/config.json")).unwrap();
    for layer in tree_names(&tree, &format!("{signed_image}/layers")) {
        let target = tree
            .readlink(
                tree.resolve(&format!("{signed_image}/layers/{layer}"))
                    .unwrap()
                    .ino,
            )
            .unwrap();
        let hex = target.rsplit('/').next().unwrap();
        read(&tree, &format!("blobs/sha256/{hex}")).unwrap();
    }
    // The signatures, which say why an image is or is not shown.
    for entry in tree_names(&tree, "cosign") {
        read(&tree, &format!("cosign/{entry}/payload")).unwrap();
    }
}

#[test]
fn require_signed_with_a_key_nothing_verifies_with_shows_no_image() {
    let sif = upstream("generated/hello-world-cosign-manifest.oci.sif");
    let tree = open(&sif, OTHER_KEY, true);
    assert!(tree_names(&tree, "images").is_empty());
    let manifest = format!("blobs/sha256/{SIGNED}");
    assert_withheld(&tree, &manifest, &format!("sha256:{SIGNED}"));
    // Entries still show their payloads and say why they do not verify.
    let entries = tree_names(&tree, "cosign");
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in entries {
        read(&tree, &format!("cosign/{entry}/payload")).unwrap();
        let verified = read(&tree, &format!("cosign/{entry}/verified")).unwrap();
        assert!(verified.starts_with(b"failed: "), "{entry}");
    }
    // The root index and the signature images' blobs stay readable.
    read(&tree, "index.json").unwrap();
}
