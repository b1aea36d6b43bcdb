//! Cosign private keys (src/cosign/private_key.rs): every key of the shared fixtures opens
//! with its password (or is refused as cosign refuses it), its public half is the `.pub`
//! upstream wrote, and its signatures verify with `openssl` as well as with our verifier.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use sifmount::cosign::{KeyError, PublicKey, SigningKey};

use crate::common::cosign_data;

const MESSAGE: &[u8] = br#"{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}"#;

fn load(rel: &str, password: Option<&[u8]>) -> Result<SigningKey, KeyError> {
    SigningKey::load(&cosign_data(rel), password)
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed to check signatures): {e}"))
}

/// Whether `openssl` says `sig` is `pub_pem`'s signature of `message` (SHA-256 digests,
/// or Ed25519 pure when `ed25519`).
fn openssl_verifies(pub_pem: &Path, message: &[u8], sig: &[u8], ed25519: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("msg");
    let sig_file = dir.path().join("sig");
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&sig_file, sig).unwrap();
    let (msg, sig_file, key) = (
        msg.to_str().unwrap(),
        sig_file.to_str().unwrap(),
        pub_pem.to_str().unwrap(),
    );
    let out = if ed25519 {
        openssl(&[
            "pkeyutl", "-verify", "-pubin", "-inkey", key, "-rawin", "-in", msg, "-sigfile",
            sig_file,
        ])
    } else {
        openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            key,
            "-signature",
            sig_file,
            msg,
        ])
    };
    out.status.success()
}

/// The key verifies its own signature with our verifier and with openssl given `pub_pem`,
/// and a signature of another message does not verify.
fn assert_signs(key: &SigningKey, verifier: &PublicKey, pub_pem: &Path) {
    let sig = key.sign(MESSAGE);
    let ed25519 = key.algorithm() == "Ed25519";
    assert!(
        verifier.verify(MESSAGE, &sig),
        "{}: our verifier rejects the key's signature",
        key.name()
    );
    assert!(
        key.public_key().verify(MESSAGE, &sig),
        "{}: its public_key() rejects its signature",
        key.name()
    );
    assert!(
        openssl_verifies(pub_pem, MESSAGE, &sig, ed25519),
        "{}: openssl rejects the {} signature",
        key.name(),
        key.algorithm()
    );
    assert!(
        !openssl_verifies(pub_pem, b"another message", &sig, ed25519),
        "{}: openssl accepts the signature for another message",
        key.name()
    );
    assert!(!verifier.verify(b"another message", &sig));
}

#[test]
fn singularity_key_opens_with_the_empty_password_and_matches_its_pub() {
    let key = load("keys/singularity-cosign.key", Some(b"")).unwrap();
    assert_eq!(key.algorithm(), "ECDSA P-256");
    let pub_path = cosign_data("keys/singularity-cosign.pub");
    let public = PublicKey::load(&pub_path).unwrap();
    assert_eq!(key.public_key().spki_der(), public.spki_der());
    assert_signs(&key, &public, &pub_path);
}

#[test]
fn synth_key_opens_with_its_password_and_matches_its_pub() {
    let key = load("keys/synth-cosign.key", Some(b"test-password")).unwrap();
    let pub_path = cosign_data("keys/synth-cosign.pub");
    let public = PublicKey::load(&pub_path).unwrap();
    assert_eq!(key.public_key().spki_der(), public.spki_der());
    assert_signs(&key, &public, &pub_path);
}

#[test]
fn cosign_repo_keys_open_with_hello() {
    for rel in [
        "keys/cosign-repo/pemcosignkey.key",
        "keys/cosign-repo/pemsigstorekey.key",
    ] {
        let key = load(rel, Some(b"hello")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.algorithm(), "ECDSA P-256", "{rel}");
        // No .pub upstream: openssl checks against the public half we derive, written
        // as PEM, and that the half is a valid P-256 point openssl parses.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("pub.pem");
        let b64 = base64::engine::general_purpose::STANDARD.encode(key.public_key().spki_der());
        std::fs::write(
            &pem,
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
        )
        .unwrap();
        assert_signs(&key, &key.public_key(), &pem);
        let wrong = load(rel, Some(b"hell")).unwrap_err();
        assert!(matches!(wrong, KeyError::WrongPassword { .. }), "{wrong}");
    }
}

#[test]
fn sec1_key_is_refused_saying_so() {
    let path = cosign_data("keys/cosign-repo/pemcosigneckey.key");
    let err = SigningKey::load(&path, Some(b"hello")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KeyError::Unsupported { .. }), "{text}");
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    assert!(text.contains("SEC1") && text.contains("PKCS#8"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn cosign_test_key_refuses_the_empty_password() {
    let path = cosign_data("cosign-repo/cosign-test.key");
    let pem = std::fs::read(&path).unwrap();
    assert!(SigningKey::is_encrypted_pem(&pem));
    let err = SigningKey::from_pem("cosign-test.key", &pem, Some(b"")).unwrap_err();
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cosign-test.key: wrong password: the encrypted key does not open with it"
    );
}

#[test]
fn wrong_and_missing_passwords() {
    let err = load("keys/synth-cosign.key", Some(b"")).unwrap_err();
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("synth-cosign.key"), "{err}");
    let err = load("keys/synth-cosign.key", None).unwrap_err();
    assert!(matches!(err, KeyError::NeedsPassword { .. }), "{err}");
    assert!(err.to_string().contains("synth-cosign.key"), "{err}");
}

/// synth-cosign.key with its JSON changed by `edit`, as PEM.
fn tampered(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let pem = std::fs::read_to_string(cosign_data("keys/synth-cosign.key")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let std = base64::engine::general_purpose::STANDARD;
    let mut json: Value = serde_json::from_slice(&std.decode(body).unwrap()).unwrap();
    edit(&mut json);
    let b64 = std.encode(serde_json::to_vec(&json).unwrap());
    format!(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{b64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    .into_bytes()
}

fn refused(pem: &[u8]) -> String {
    let err = SigningKey::from_pem("t.key", pem, Some(b"test-password")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("t.key: "), "{text}");
    assert!(!text.contains('\n'), "{text}");
    text
}

#[test]
fn tampered_key_json_is_refused() {
    // The untouched re-encoding opens: the edits below are what makes each fail.
    let same = tampered(|_| {});
    SigningKey::from_pem("t.key", &same, Some(b"test-password")).unwrap();

    let t = refused(&tampered(|j| j["kdf"]["params"]["N"] = 1024.into()));
    assert!(t.contains("N=1024"), "{t}");
    let t = refused(&tampered(|j| j["kdf"]["params"]["N"] = 1_048_576.into()));
    assert!(t.contains("N=1048576"), "{t}");
    let t = refused(&tampered(|j| j["kdf"]["params"]["r"] = 16.into()));
    assert!(t.contains("r=16"), "{t}");
    let t = refused(&tampered(|j| j["kdf"]["params"]["N"] = 32768.into()));
    assert!(t.contains("wrong password"), "{t}");
    let t = refused(&tampered(|j| j["kdf"]["name"] = "argon2".into()));
    assert!(t.contains("argon2") && t.contains("scrypt"), "{t}");
    let t = refused(&tampered(|j| j["cipher"]["name"] = "aes-256-gcm".into()));
    assert!(
        t.contains("aes-256-gcm") && t.contains("nacl/secretbox"),
        "{t}"
    );
    let t = refused(&tampered(|j| j["cipher"]["nonce"] = "AAAA".into()));
    assert!(t.contains("nonce is 3 bytes"), "{t}");
    let t = refused(&tampered(|j| j["ciphertext"] = "not base64!".into()));
    assert!(t.contains("ciphertext is not base64"), "{t}");
    let t = refused(&tampered(|j| j["kdf"]["params"] = "x".into()));
    assert!(t.contains("scrypt params"), "{t}");
    // One flipped ciphertext byte fails authentication like a wrong password.
    let t = refused(&tampered(|j| {
        let std = base64::engine::general_purpose::STANDARD;
        let mut ct = std.decode(j["ciphertext"].as_str().unwrap()).unwrap();
        ct[20] ^= 1;
        j["ciphertext"] = std.encode(ct).into();
    }));
    assert!(t.contains("wrong password"), "{t}");
}

#[test]
fn malformed_files_are_refused() {
    let t = refused(b"hello");
    assert!(t.contains("not a PEM file"), "{t}");
    let t = refused(
        b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\nbm90IGpzb24=\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n",
    );
    assert!(t.contains("not the expected JSON"), "{t}");
    let t = refused(b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n");
    assert!(t.contains("not base64"), "{t}");
    let t = refused(b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n");
    assert!(t.contains("PKCS#8"), "{t}");
    let public = std::fs::read(cosign_data("keys/synth-cosign.pub")).unwrap();
    let t = refused(&public);
    assert!(t.contains("PUBLIC KEY") && t.contains("private key"), "{t}");
    assert!(!SigningKey::is_encrypted_pem(&public));
    assert!(!SigningKey::is_private_pem(&public));
}

/// Generates a key with openssl: the PKCS#8 PEM private key and its PKIX public key PEM.
fn openssl_key(dir: &Path, name: &str, genpkey: &[&str]) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", key.to_str().unwrap()]);
    let out = openssl(&args);
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    let out = openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "openssl pkey -pubout: {out:?}");
    (key, public)
}

#[test]
fn unencrypted_pkcs8_keys_of_each_kind_sign_what_openssl_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let kinds: [(&str, &[&str], &str); 4] = [
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "ECDSA P-256",
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "ECDSA P-384",
        ),
        ("ed25519", &["-algorithm", "ED25519"], "Ed25519"),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "RSA",
        ),
    ];
    for (name, genpkey, algorithm) in kinds {
        let (key_path, pub_path) = openssl_key(dir.path(), name, genpkey);
        let pem = std::fs::read(&key_path).unwrap();
        assert!(SigningKey::is_private_pem(&pem), "{name}");
        assert!(!SigningKey::is_encrypted_pem(&pem), "{name}");
        // An unencrypted key needs no password, and ignores one given.
        let key = SigningKey::load(&key_path, None).unwrap_or_else(|e| panic!("{e}"));
        SigningKey::load(&key_path, Some(b"x")).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        let public = PublicKey::load(&pub_path).unwrap();
        assert_eq!(
            key.public_key().spki_der(),
            public.spki_der(),
            "{name}: the public half differs from openssl's"
        );
        assert_signs(&key, &public, &pub_path);
    }
    // openssl's traditional EC form is SEC1: refused as cosign refuses it.
    let sec1 = dir.path().join("sec1.key");
    let out = openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        sec1.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let err = SigningKey::load(&sec1, None).unwrap_err();
    assert!(err.to_string().contains("SEC1"), "{err}");
    // An unsupported curve in PKCS#8 names the curve.
    let (k521, _) = openssl_key(
        dir.path(),
        "p521",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    );
    let err = SigningKey::load(&k521, None).unwrap_err();
    assert!(
        matches!(err, KeyError::Unsupported { .. }) && err.to_string().contains("1.3.132.0.35"),
        "{err}"
    );
}

#[test]
fn debug_shows_no_secret() {
    let key = load("keys/synth-cosign.key", Some(b"test-password")).unwrap();
    let shown = format!("{key:?}");
    assert!(shown.contains("synth-cosign.key") && shown.contains("ECDSA P-256"));
    assert!(shown.len() < 200, "{shown}");
}
