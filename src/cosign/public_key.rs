//! Public keys to verify with, as cosign and SingularityCE write them (PEM `PUBLIC KEY`,
//! SubjectPublicKeyInfo; also PKCS#1 `RSA PUBLIC KEY`): ECDSA P-256 and P-384, Ed25519
//! and RSA. What they verify, and how, is src/cosign/verify.rs's business.

use std::fmt;
use std::io::Read;
use std::path::Path;

use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::signature::hazmat::PrehashVerifier as _;
use rsa::signature::Verifier as _;
use sha2::{Digest as _, Sha256};
use spki::der::Decode as _;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

use super::dsse::decode_base64_bytes;
use super::error::{CosignError, Result};

/// A PEM public key file is well under a kilobyte (an RSA-4096 one is 800 bytes): more
/// is the wrong file, and not worth reading whole.
const MAX_KEY_FILE: u64 = 64 * 1024;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A public key to verify with, as cosign writes them (`cosign.pub`: PEM `PUBLIC KEY`).
#[derive(Clone)]
pub struct PublicKey {
    name: String,
    key: KeyKind,
    /// The key as PKIX `SubjectPublicKeyInfo` DER, which the sigstore crates take.
    spki: Vec<u8>,
}

#[derive(Clone)]
enum KeyKind {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.name, self.algorithm())
    }
}

impl PublicKey {
    /// Reads a PEM public key file. Errors name the file and say what is wrong with it.
    pub fn load(path: &Path) -> Result<PublicKey> {
        let name = path.display().to_string();
        let fail = |problem: String| CosignError::File {
            path: name.clone(),
            problem,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(fail(format!(
                "larger than {} KiB: not a PEM public key",
                MAX_KEY_FILE / 1024
            )));
        }
        PublicKey::from_pem(&bytes, &name)
    }

    /// Parses a PEM public key: `PUBLIC KEY` (PKIX, as cosign writes ECDSA P-256/P-384,
    /// Ed25519 and RSA keys) or `RSA PUBLIC KEY` (PKCS#1). `name` is what messages and
    /// verdicts call the key, normally its file path.
    pub fn from_pem(pem: &[u8], name: &str) -> Result<PublicKey> {
        let fail = |problem: String| CosignError::File {
            path: name.to_string(),
            problem,
        };
        let (label, der) = pem_block(pem).map_err(fail)?;
        let (key, spki) = match label.as_str() {
            "PUBLIC KEY" => (key_from_spki(&der).map_err(fail)?, der),
            "RSA PUBLIC KEY" => {
                let key = rsa::RsaPublicKey::from_pkcs1_der(&der)
                    .map_err(|e| fail(format!("not a valid PKCS#1 RSA public key: {e}")))?;
                let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&key)
                    .map_err(|e| fail(format!("cannot re-encode the RSA key as PKIX: {e}")))?
                    .into_vec();
                (KeyKind::Rsa(rsa::pkcs1v15::VerifyingKey::new(key)), spki)
            }
            "CERTIFICATE" => {
                return Err(fail(
                    "holds a certificate, not a public key (extract the key with \
                     `openssl x509 -pubkey -noout -in FILE`)"
                        .to_string(),
                ))
            }
            l if l.contains("PRIVATE KEY") => {
                return Err(fail(format!(
                    "holds a private key ({l}); verification takes the public key (cosign's `.pub` file)"
                )))
            }
            l => return Err(fail(format!("holds a PEM {l}, not a PUBLIC KEY"))),
        };
        Ok(PublicKey {
            name: name.to_string(),
            key,
            spki,
        })
    }

    /// The key of a PKIX `SubjectPublicKeyInfo` DER (a private key's public half), called
    /// `name` in verdicts.
    pub(super) fn from_spki_der(
        name: &str,
        spki: Vec<u8>,
    ) -> std::result::Result<PublicKey, String> {
        Ok(PublicKey {
            name: name.to_string(),
            key: key_from_spki(&spki)?,
            spki,
        })
    }

    /// The key as PKIX `SubjectPublicKeyInfo` DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The name verdicts use: the file path as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn algorithm(&self) -> &'static str {
        match self.key {
            KeyKind::P256(_) => "ECDSA P-256",
            KeyKind::P384(_) => "ECDSA P-384",
            KeyKind::Ed25519(_) => "Ed25519",
            KeyKind::Rsa(_) => "RSA",
        }
    }

    /// Whether `signature` is this key's signature of `message`, as sigstore's verifiers
    /// check it: ECDSA with SHA-256 over the message, the signature ASN.1 DER or (if that
    /// does not parse) IEEE P1363 `r‖s`; P-384 also with SHA-384, which cosign v3 signs
    /// P-384 keys with; Ed25519 pure; RSA PKCS#1 v1.5 with SHA-256.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            KeyKind::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .or_else(|_| p256::ecdsa::Signature::from_slice(signature))
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            KeyKind::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .or_else(|_| p384::ecdsa::Signature::from_slice(signature))
                .is_ok_and(|sig| {
                    key.verify_prehash(&Sha256::digest(message), &sig).is_ok()
                        || key.verify(message, &sig).is_ok()
                }),
            KeyKind::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            KeyKind::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
        }
    }
}

impl PublicKey {
    /// Whether `signature` is this key's signature of a message whose SHA-256 is `digest`:
    /// how a sigstore bundle's `messageSignature` is checked when only the digest is at
    /// hand (ECDSA and RSA PKCS#1 v1.5 sign the digest). Pure Ed25519 signs the message
    /// itself, which a digest cannot check, so it never verifies here.
    pub fn verify_sha256_digest(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        match &self.key {
            KeyKind::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .or_else(|_| p256::ecdsa::Signature::from_slice(signature))
                .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
            KeyKind::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .or_else(|_| p384::ecdsa::Signature::from_slice(signature))
                .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
            KeyKind::Ed25519(_) => false,
            KeyKind::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
        }
    }

    /// Whether [`PublicKey::verify_sha256_digest`] can say yes at all.
    pub fn signs_digests(&self) -> bool {
        !matches!(self.key, KeyKind::Ed25519(_))
    }
}

/// The first PEM block of `text`: its label and decoded body. Text before and after it
/// is ignored, as Go's `pem.Decode` (which cosign uses) ignores it.
pub(super) fn pem_block(text: &[u8]) -> std::result::Result<(String, Vec<u8>), String> {
    const NOT_PEM: &str = "not a PEM file (no -----BEGIN line): give a public key as cosign \
                           writes it (-----BEGIN PUBLIC KEY-----)";
    let begin = find(text, b"-----BEGIN ").ok_or(NOT_PEM)?;
    let rest = &text[begin + b"-----BEGIN ".len()..];
    let label_end = find(rest, b"-----").ok_or(NOT_PEM)?;
    let label = std::str::from_utf8(&rest[..label_end])
        .ok()
        .filter(|l| l.len() <= 64 && !l.contains(['\n', '\r']))
        .ok_or(NOT_PEM)?
        .to_string();
    let body = &rest[label_end + b"-----".len()..];
    let end_line = format!("-----END {label}-----");
    let body_end = find(body, end_line.as_bytes())
        .ok_or_else(|| format!("PEM {label} block has no {end_line} line"))?;
    let body = &body[..body_end];
    // RFC 1421 headers (`Proc-Type: …`) only occur in encrypted private keys.
    if body.contains(&b':') {
        return Err(format!(
            "PEM {label} block has headers: encrypted or not a public key"
        ));
    }
    let der =
        decode_base64_bytes(body).map_err(|p| format!("PEM {label} block is not base64: {p}"))?;
    Ok((label, der))
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn key_from_spki(der: &[u8]) -> std::result::Result<KeyKind, String> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| format!("not a valid PKIX public key: {e}"))?;
    let oid = spki.algorithm.oid;
    let invalid = |what: &str, e: &dyn fmt::Display| format!("not a valid {what} public key: {e}");
    if oid == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters_oid()
            .map_err(|e| format!("EC public key without a named curve: {e}"))?;
        if curve == OID_P256 {
            p256::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(KeyKind::P256)
                .map_err(|e| invalid("ECDSA P-256", &e))
        } else if curve == OID_P384 {
            p384::ecdsa::VerifyingKey::from_public_key_der(der)
                .map(KeyKind::P384)
                .map_err(|e| invalid("ECDSA P-384", &e))
        } else {
            Err(format!(
                "unsupported elliptic curve {curve} (supported: P-256, P-384)"
            ))
        }
    } else if oid == OID_ED25519 {
        ed25519_dalek::VerifyingKey::from_public_key_der(der)
            .map(KeyKind::Ed25519)
            .map_err(|e| invalid("Ed25519", &e))
    } else if oid == OID_RSA {
        rsa::RsaPublicKey::from_public_key_der(der)
            .map(|k| KeyKind::Rsa(rsa::pkcs1v15::VerifyingKey::new(k)))
            .map_err(|e| invalid("RSA", &e))
    } else {
        Err(format!(
            "unsupported key algorithm {oid} (supported: ECDSA P-256 and P-384, Ed25519, RSA)"
        ))
    }
}
