//! Signing through a real mount (the man page, SIGNING, "Signing in the mount"): mounted
//! with a private key, `touch MP/cosign/sign/NAME` signs image NAME with SingularityCE's
//! payload, `cp payload.json` and `cp statement.json` into `MP/cosign/sign/` sign and
//! attest them; the public half of the key verifies what was made, and so do `openssl`
//! and `sifmount --verify` with the upstream `.pub`.
//!
//! Needs /dev/fuse, `fusermount3`, `openssl`, coreutils (`touch`, `cp`) and `siftool`;
//! fails, saying how to install what is missing, rather than skipping.

use std::fs;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::common::mounted::{assert_ok, cp, ls, read, run_tool, sifmount_bin, Mode, Mount};
use crate::common::{self, assert_bytes_eq, cosign_data, upstream};

const UNSIGNED: &str = "generated/squashfs-image.oci.sif";

/// A writable copy of the unsigned upstream image, mounted with the synth key.
fn signing_mount(dir: &Path) -> (Mount, std::path::PathBuf) {
    let image = common::writable_copy_of(&upstream(UNSIGNED), dir, "image.oci.sif");
    let key = cosign_data("keys/synth-cosign.key");
    let m = Mount::with_env(
        &image,
        Mode::Foreground,
        &["--key", key.to_str().unwrap()],
        &[("COSIGN_PASSWORD", "test-password")],
    );
    (m, image)
}

fn entries(m: &Mount, prefix: &str) -> Vec<String> {
    ls(&m.path("cosign"))
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn openssl_verifies(dir: &Path, data: &[u8], signature_b64: &str) -> bool {
    let sig = base64::engine::general_purpose::STANDARD
        .decode(signature_b64)
        .expect("the signature annotation is base64");
    let (d, s) = (dir.join("signed-data"), dir.join("signature.der"));
    fs::write(&d, data).unwrap();
    fs::write(&s, sig).unwrap();
    let out = run_tool(
        "openssl",
        "openssl",
        &[
            &"dgst",
            &"-sha256",
            &"-verify",
            &cosign_data("keys/synth-cosign.pub"),
            &"-signature",
            &s,
            &d,
        ],
    );
    out.success() && out.stdout.contains("Verified OK")
}

#[test]
fn touch_in_sign_signs_the_image_and_the_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (m, image) = signing_mount(dir.path());
    let cosign = m.path("cosign");
    assert_eq!(ls(&cosign), ["sign"], "log:\n{}", m.log_text());
    let images = ls(&m.path("images"));
    assert_eq!(images.len(), 1, "{images:?}");

    let out = run_tool(
        "touch",
        "coreutils",
        &[&cosign.join("sign").join(&images[0])],
    );
    assert_ok(&out, "touch MP/cosign/sign/IMAGE", &m);
    assert!(ls(&cosign.join("sign")).is_empty(), "the request is done");
    let sigs = entries(&m, "sig-");
    assert_eq!(sigs.len(), 1, "{:?}; log:\n{}", ls(&cosign), m.log_text());
    let entry = cosign.join(&sigs[0]);
    let verified = String::from_utf8(read(&entry.join("verified"))).unwrap();
    assert!(verified.starts_with("ok: verified with"), "{verified}");

    // SingularityCE's fields in its order.
    let payload = read(&entry.join("payload"));
    let parsed: serde_json::Map<String, Value> = serde_json::from_slice(&payload).unwrap();
    assert_eq!(parsed.keys().collect::<Vec<_>>(), ["critical", "optional"]);
    assert_eq!(
        parsed["critical"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["identity", "image", "type"]
    );
    assert_eq!(
        parsed["optional"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["creator", "timestamp"]
    );
    let annotations: serde_json::Map<String, Value> =
        serde_json::from_slice(&read(&entry.join("annotations"))).unwrap();
    let sig = annotations["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    assert!(
        openssl_verifies(dir.path(), &payload, sig),
        "openssl verifies"
    );
    m.unmount();

    // A verifier of its own, with the upstream public key, on the file as written.
    let out = Command::new(sifmount_bin())
        .arg("--verify")
        .arg(&image)
        .arg("--key")
        .arg(cosign_data("keys/synth-cosign.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sifmount --verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_tool("siftool", "siftool", &[&"list", &image]);
    assert!(out.success(), "siftool list: {}", out.stderr);
}

#[test]
fn payloads_and_statements_copied_into_sign_are_signed_and_attested() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _image) = signing_mount(dir.path());
    let cosign = m.path("cosign");
    let index: Value = serde_json::from_slice(&read(&m.path("index.json"))).unwrap();
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_none_or(|n| !n.starts_with("_cosign"))
        })
        .and_then(|e| e["digest"].as_str())
        .expect("the image's root-index entry")
        .to_string();

    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":""}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"purpose":"test"}}}}"#
    );
    let payload_file = dir.path().join("payload.json");
    fs::write(&payload_file, &payload).unwrap();
    let out = cp(&[&payload_file, &cosign.join("sign")]);
    assert_ok(&out, "cp payload.json MP/cosign/sign/", &m);
    let sigs = entries(&m, "sig-");
    assert_eq!(sigs.len(), 1, "{:?}; log:\n{}", ls(&cosign), m.log_text());
    assert_bytes_eq(
        &read(&cosign.join(&sigs[0]).join("payload")),
        payload.as_bytes(),
        "the payload as given",
    );

    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://example.com/sifmount-test","subject":[{{"name":"image","digest":{{"sha256":"{}"}}}}],"predicate":{{"ok":true}}}}"#,
        &digest[7..]
    );
    let statement_file = dir.path().join("statement.json");
    fs::write(&statement_file, &statement).unwrap();
    let out = cp(&[&statement_file, &cosign.join("sign")]);
    assert_ok(&out, "cp statement.json MP/cosign/sign/", &m);
    let atts = entries(&m, "att-");
    assert_eq!(atts.len(), 1, "{:?}; log:\n{}", ls(&cosign), m.log_text());
    let att = cosign.join(&atts[0]);
    assert_bytes_eq(
        &read(&att.join("statement.json")),
        statement.as_bytes(),
        "the attested statement",
    );
    let verified = String::from_utf8(read(&att.join("verified"))).unwrap();
    assert!(verified.starts_with("ok: verified with"), "{verified}");

    // A refused request: the error beside it names it and says why.
    let out = run_tool(
        "touch",
        "coreutils",
        &[&cosign.join("sign").join("nothing")],
    );
    assert!(!out.success(), "touch of an unknown image succeeded");
    let error = fs::read_to_string(cosign.join("sign").join("nothing.error")).unwrap();
    assert!(
        error.contains("cosign/sign/nothing") && error.contains("no image is named"),
        "{error}"
    );

    // The signing directory is the mount's own: no directories in it, and it stays.
    let made = fs::create_dir(cosign.join("sign").join("subdir"));
    assert_eq!(
        made.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EPERM)),
        "mkdir in sign/"
    );
    let removed = fs::remove_dir(cosign.join("sign"));
    assert_eq!(
        removed.map_err(|e| e.raw_os_error()),
        Err(Some(libc::EPERM)),
        "rmdir of sign/"
    );
    assert!(cosign.join("sign").is_dir());
}

#[test]
fn a_wrong_password_mounts_nothing_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let image = common::writable_copy_of(&upstream(UNSIGNED), dir.path(), "image.oci.sif");
    let before = read(&image);
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).unwrap();
    let key = cosign_data("keys/synth-cosign.key");
    let out = Command::new(sifmount_bin())
        .arg("--key")
        .arg(&key)
        .arg(&image)
        .arg(&mp)
        .env("COSIGN_PASSWORD", "not-the-password")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(key.to_str().unwrap()) && stderr.contains("password"),
        "{stderr}"
    );
    assert!(!crate::common::mounted::is_mounted(&mp));
    assert_bytes_eq(&read(&image), &before, "after a refused key");
}
