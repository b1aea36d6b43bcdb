//! What the `.error` files of `/cosign` say (the man page, ATTACHING): the file that is
//! wrong, not the one closed last; the digest a payload names that is not in the image,
//! and what in the payload names it; and one line of text, ending in a newline, as any
//! file `cat` shows should.

use std::path::Path;

use crate::common::lookup::resolve;
use crate::common::{upstream_signature_text, writable_temp_copy};
use sifmount::tree::TreeError;
use sifmount::volume::{Volume, VolumeOptions};

const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn open(path: &Path) -> Volume {
    Volume::open(
        path,
        VolumeOptions {
            writable: true,
            max_staged_size: 64 << 10,
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

fn text(v: &Volume, path: &str) -> String {
    let ino = resolve(v, path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let size = v.attr(ino).unwrap().size as usize;
    let mut buf = vec![0; size];
    let n = v.read_at(ino, 0, 0, &mut buf).unwrap();
    buf.truncate(n);
    String::from_utf8(buf).unwrap()
}

/// What `cp SRC DIR/NAME` does for a new file: create, write, close.
fn cp_new(v: &Volume, dir: &str, name: &str, bytes: &[u8]) -> Result<(), TreeError> {
    let parent = resolve(v, dir).unwrap();
    let (attr, fh) = v.create(parent, name.as_bytes())?;
    v.write_at(attr.ino, fh, 0, bytes)?;
    let result = v.flush(attr.ino, fh);
    v.release(attr.ino, fh);
    result
}

/// SingularityCE's payload and signature, with the payload's target changed to a digest
/// the image does not hold.
fn foreign_payload() -> (Vec<u8>, String) {
    let (payload, sig) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    let mut value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    value["critical"]["image"]["docker-manifest-digest"] = ZERO_DIGEST.into();
    (serde_json::to_vec(&value).unwrap(), sig)
}

fn assert_one_line(reason: &str) {
    assert!(reason.ends_with('\n'), "no final newline: {reason:?}");
    assert_eq!(reason.matches('\n').count(), 1, "{reason:?}");
}

#[test]
fn a_payload_naming_a_foreign_target_is_blamed_after_its_signature_closes() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path);
    let (payload, sig) = foreign_payload();
    assert!(cp_new(&v, "cosign", "p.json", &payload).is_err());
    // The signature is fine; closing it evaluates the group again.
    let e = cp_new(&v, "cosign", "p.json.sig", sig.as_bytes()).unwrap_err();
    assert!(matches!(e, TreeError::Rejected(_)), "{e:?}");
    let reason = text(&v, "cosign/p.json.error");
    assert_one_line(&reason);
    assert!(
        reason.starts_with("cosign/p.json: payload: "),
        "names the payload, not the signature closed last: {reason}"
    );
    assert!(
        reason.contains(ZERO_DIGEST) && reason.contains("critical.image.docker-manifest-digest"),
        "says which digest is not in the image and what names it: {reason}"
    );
    assert!(
        reason.contains("is not a manifest or index in this image"),
        "{reason}"
    );
}

#[test]
fn in_a_directory_the_error_names_the_payload_whatever_closed_last() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path);
    let (payload, sig) = foreign_payload();
    let cosign = resolve(&v, "cosign").unwrap();
    v.mkdir(cosign, b"d").unwrap();
    assert!(cp_new(&v, "cosign/d", "payload", &payload).is_err());
    assert!(cp_new(&v, "cosign/d", "signature", sig.as_bytes()).is_err());
    let reason = text(&v, "cosign/d/error");
    assert_one_line(&reason);
    assert!(reason.starts_with("cosign/d/payload: "), "{reason}");
    assert!(reason.contains(ZERO_DIGEST), "{reason}");
}

#[test]
fn a_bad_signature_is_blamed_on_the_signature() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path);
    let (payload, _) = upstream_signature_text("generated/squashfs-image.signed1.oci.sif");
    cp_new(&v, "cosign", "p", &payload).unwrap();
    assert!(cp_new(&v, "cosign", "p.sig", b"not base64!!").is_err());
    let reason = text(&v, "cosign/p.error");
    assert_one_line(&reason);
    assert!(reason.starts_with("cosign/p.sig: signature: "), "{reason}");
}

#[test]
fn a_size_refusal_is_one_line_naming_the_file() {
    let (_dir, path) = writable_temp_copy("generated/squashfs-image.oci.sif");
    let v = open(&path);
    let e = cp_new(&v, "cosign", "big", &vec![b'x'; (64 << 10) + 1]).unwrap_err();
    assert!(matches!(e, TreeError::TooLarge(_)), "{e:?}");
    let reason = text(&v, "cosign/big.error");
    assert_one_line(&reason);
    assert!(reason.starts_with("cosign/big: "), "{reason}");
}
