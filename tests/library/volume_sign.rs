//! Signing requests in `/cosign/sign/` without a kernel (the man page, SIGNING): the calls
//! the mount makes for `touch sign/NAME` and `cp FILE sign/`, made straight on a
//! [`Volume`] opened with a private key, checked against SingularityCE's payload fields
//! and order, the key's upstream `.pub`, and `openssl`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;
use sifmount::cosign::{singularity_payload, PublicKey, SigningKey, Trust, SIGNATURE_ANNOTATION};
use sifmount::tree::{TreeError, TreeOptions};
use sifmount::volume::{Volume, VolumeOptions};

use crate::common::lookup::{names, resolve};
use crate::common::{assert_bytes_eq, cosign_data, writable_temp_copy};

const UNSIGNED: &str = "generated/squashfs-image.oci.sif";

fn synth_key() -> Arc<SigningKey> {
    Arc::new(
        SigningKey::load(
            &cosign_data("keys/synth-cosign.key"),
            Some(b"test-password"),
        )
        .expect("the synth key opens with its password"),
    )
}

/// A volume signing with `key` and verifying with its upstream public half.
fn open(path: &Path, writable: bool, key: Arc<SigningKey>) -> Volume {
    let public = PublicKey::load(&cosign_data("keys/synth-cosign.pub")).unwrap();
    Volume::open(
        path,
        VolumeOptions {
            writable,
            signing_key: Some(key),
            tree: TreeOptions {
                trust: Trust::keys(vec![public]),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

fn read_all(v: &Volume, path: &str) -> Vec<u8> {
    let ino = resolve(v, path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let size = v.attr(ino).unwrap().size as usize;
    let mut buf = vec![0; size];
    let n = v.read_at(ino, 0, 0, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// What `touch DIR/NAME` (empty `bytes`) or `cp FILE DIR/NAME` does for a new file.
fn request(v: &Volume, name: &str, bytes: &[u8]) -> Result<(), TreeError> {
    let parent = resolve(v, "cosign/sign").expect("cosign/sign exists");
    let (attr, fh) = v.create(parent, name.as_bytes())?;
    if !bytes.is_empty() {
        v.write_at(attr.ino, fh, 0, bytes)?;
    }
    // touch sets the times through the open descriptor before closing it.
    v.setattr(attr.ino, None, Some(fh))?;
    let result = v.flush(attr.ino, fh);
    v.release(attr.ino, fh);
    result
}

/// The one image's name under `/images`.
fn image_name(v: &Volume) -> String {
    let images = names(v, "images");
    assert_eq!(images.len(), 1, "{images:?}");
    images[0].clone()
}

fn entries(v: &Volume, prefix: &str) -> Vec<String> {
    names(v, "cosign")
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// `openssl dgst -sha256 -verify PUB -signature SIG DATA` says "Verified OK".
fn openssl_verifies(public_pem: &Path, data: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (d, s) = (dir.path().join("data"), dir.path().join("sig"));
    std::fs::write(&d, data).unwrap();
    std::fs::write(&s, signature).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_pem)
        .arg("-signature")
        .arg(&s)
        .arg(&d)
        .output()
        .expect("openssl is installed (apt-get install openssl)");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[test]
fn touch_signs_the_image_with_singularitys_payload() {
    let (_dir, path) = writable_temp_copy(UNSIGNED);
    let v = open(&path, true, synth_key());
    assert_eq!(names(&v, "cosign"), ["sign"], "the signing directory");
    let name = image_name(&v);
    request(&v, &name, b"").unwrap();
    assert!(names(&v, "cosign/sign").is_empty(), "the request is done");
    let sigs = entries(&v, "sig-");
    assert_eq!(sigs.len(), 1, "{:?}", names(&v, "cosign"));
    let entry = format!("cosign/{}", sigs[0]);

    // SingularityCE's fields, in its order, for the image's digest.
    let payload = read_all(&v, &format!("{entry}/payload"));
    // `target` holds the digest, then where the image is in the mount.
    let target = String::from_utf8(read_all(&v, &format!("{entry}/target"))).unwrap();
    let target = target.lines().next().unwrap().to_string();
    let parsed: serde_json::Map<String, Value> = serde_json::from_slice(&payload).unwrap();
    assert_eq!(parsed.keys().collect::<Vec<_>>(), ["critical", "optional"]);
    let critical = parsed["critical"].as_object().unwrap();
    assert_eq!(
        critical.keys().collect::<Vec<_>>(),
        ["identity", "image", "type"]
    );
    assert_eq!(
        critical["identity"].to_string(),
        r#"{"docker-reference":""}"#
    );
    assert_eq!(
        critical["image"]["docker-manifest-digest"].as_str(),
        Some(target.as_str())
    );
    assert_eq!(
        critical["type"].as_str(),
        Some("cosign container image signature")
    );
    let optional = parsed["optional"].as_object().unwrap();
    assert_eq!(
        optional.keys().collect::<Vec<_>>(),
        ["creator", "timestamp"]
    );
    assert!(optional["creator"]
        .as_str()
        .is_some_and(|c| c.starts_with("sifmount/")));
    assert!(optional["timestamp"].is_i64(), "{optional:?}");
    // Byte for byte the payload `singularity_payload` makes, which `cosign_sign.rs` checks
    // against SingularityCE's own.
    let remade = singularity_payload(
        &target.parse().unwrap(),
        optional["creator"].as_str().unwrap(),
        optional["timestamp"].as_i64().unwrap(),
        &BTreeMap::new(),
    );
    assert_bytes_eq(&payload, &remade, "the payload of touch sign/NAME");

    // The public half verifies it: the mount's verdict, and openssl.
    let verified = String::from_utf8(read_all(&v, &format!("{entry}/verified"))).unwrap();
    assert!(verified.starts_with("ok: verified with"), "{verified}");
    let annotations: BTreeMap<String, String> =
        serde_json::from_slice(&read_all(&v, &format!("{entry}/annotations"))).unwrap();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&annotations[SIGNATURE_ANNOTATION])
        .unwrap();
    assert!(openssl_verifies(
        &cosign_data("keys/synth-cosign.pub"),
        &payload,
        &sig
    ));

    // Again, a second later (within the same second the payload, and so the
    // deterministic ECDSA signature, would be the same layer): a second signature, by
    // digest this time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    request(&v, &format!("sha256-{}", &target[7..]), b"").unwrap();
    assert_eq!(entries(&v, "sig-").len(), 2, "{:?}", names(&v, "cosign"));
    drop(v);

    // What the file holds: the image's own verifier, reopened read-only.
    let v = open(&path, false, synth_key());
    assert_eq!(entries(&v, "sig-").len(), 2);
    assert!(
        !names(&v, "cosign").contains(&"sign".to_string()),
        "a read-only volume does not sign"
    );
}

#[test]
fn payloads_are_signed_as_given_and_statements_attested() {
    let (_dir, path) = writable_temp_copy(UNSIGNED);
    let v = open(&path, true, synth_key());
    let name = image_name(&v);
    let digest = v_image_digest(&v, &name);
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":""}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"note":"mine"}}}}"#
    );
    request(&v, "payload.json", payload.as_bytes()).unwrap();
    let sigs = entries(&v, "sig-");
    assert_eq!(sigs.len(), 1);
    assert_bytes_eq(
        &read_all(&v, &format!("cosign/{}/payload", sigs[0])),
        payload.as_bytes(),
        "the payload as given",
    );
    assert!(
        String::from_utf8(read_all(&v, &format!("cosign/{}/verified", sigs[0])))
            .unwrap()
            .starts_with("ok:"),
    );

    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://example.com/test","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicate":{{"hello":"world"}}}}"#,
        &digest[7..]
    );
    request(&v, "statement.json", statement.as_bytes()).unwrap();
    let atts = entries(&v, "att-");
    assert_eq!(atts.len(), 1, "{:?}", names(&v, "cosign"));
    let att = format!("cosign/{}", atts[0]);
    assert_bytes_eq(
        &read_all(&v, &format!("{att}/statement.json")),
        statement.as_bytes(),
        "the statement inside the envelope",
    );
    assert_eq!(
        String::from_utf8(read_all(&v, &format!("{att}/predicate-type"))).unwrap(),
        "https://example.com/test\n"
    );
    let verified = String::from_utf8(read_all(&v, &format!("{att}/verified"))).unwrap();
    assert!(verified.starts_with("ok: verified with"), "{verified}");
}

fn v_image_digest(v: &Volume, name: &str) -> String {
    let index: Value =
        serde_json::from_slice(&read_all(v, &format!("images/{name}/index.json"))).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn refused_requests_say_why_and_change_nothing() {
    let (_dir, path) = writable_temp_copy(UNSIGNED);
    let before = std::fs::read(&path).unwrap();
    let v = open(&path, true, synth_key());
    let name = image_name(&v);

    let e = request(&v, "no-such-image", b"").unwrap_err();
    assert!(matches!(e, TreeError::Rejected(_)), "{e:?}");
    let error = String::from_utf8(read_all(&v, "cosign/sign/no-such-image.error")).unwrap();
    assert!(
        error.contains("cosign/sign/no-such-image") && error.contains(&name),
        "names the request and the images there are: {error}"
    );
    let e = request(&v, "junk.json", b"{\"neither\":1}").unwrap_err();
    assert!(e.to_string().contains("in-toto statement"), "{e}");
    let elsewhere = format!("sha256-{}", "cd".repeat(32));
    let e = request(&v, &elsewhere, b"").unwrap_err();
    assert!(
        e.to_string()
            .contains("not a manifest or index in this image"),
        "{e}"
    );
    // Removing a refused request takes its error with it.
    let sign = resolve(&v, "cosign/sign").unwrap();
    v.unlink(sign, b"junk.json").unwrap();
    assert!(!names(&v, "cosign/sign").contains(&"junk.json.error".to_string()));
    // The directory is the mount's own.
    let cosign = resolve(&v, "cosign").unwrap();
    assert!(v.rmdir(cosign, b"sign").is_err());
    assert!(v.mkdir(sign, b"d").is_err());
    assert!(entries(&v, "sig-").is_empty() && entries(&v, "att-").is_empty());
    drop(v);
    assert_bytes_eq(
        &std::fs::read(&path).unwrap(),
        &before,
        "after refused requests",
    );
}
