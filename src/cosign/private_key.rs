//! Private keys to sign with, as cosign and SingularityCE write them (docs/FORMAT.md, Private
//! keys): the encrypted PEM of `cosign generate-key-pair` (`ENCRYPTED SIGSTORE PRIVATE KEY`,
//! formerly `ENCRYPTED COSIGN PRIVATE KEY`: scrypt, then NaCl secretbox around PKCS#8 DER)
//! and unencrypted PKCS#8 PEM (`PRIVATE KEY`). ECDSA P-256 and P-384, Ed25519 and RSA, as
//! src/cosign/public_key.rs verifies them.

use std::fmt;
use std::io::Read;
use std::path::Path;

use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use crypto_secretbox::XSalsa20Poly1305;
use pkcs8::DecodePrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::signature::hazmat::PrehashSigner as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use spki::der::asn1::BitStringRef;
use spki::der::{Decode as _, Encode as _};
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::dsse::decode_base64_bytes;
use super::public_key::{find, pem_block};
use super::verify::PublicKey;

/// An encrypted cosign key is about 650 bytes, an unencrypted RSA-4096 PKCS#8 one 3.3 KB:
/// more is the wrong file, and not worth reading whole.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The PEM labels of cosign's encrypted keys: the current one, and the one older keys
/// (and SingularityCE's test key) carry.
const ENCRYPTED_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// The scrypt work factors cosign decrypts (each with r = 8, p = 1): legacy, default and
/// OWASP. Others are refused as cosign refuses them, so a doctored file cannot make us
/// spend gigabytes (a large N) or accept a key that is weakly protected (a small one).
const SCRYPT_N: [u64; 3] = [32768, 65536, 131072];
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// NaCl secretbox's nonce and tag sizes (XSalsa20-Poly1305).
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Why a private key could not be loaded. Each message is one line naming the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{name}: cannot read the key file: {source}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The key is encrypted and the caller had no password: it can ask for one and retry.
    #[error("{name}: the key is encrypted and no password was given")]
    NeedsPassword { name: String },
    /// The password does not open the encrypted key (NaCl secretbox authentication failed).
    #[error("{name}: wrong password: the encrypted key does not open with it")]
    WrongPassword { name: String },
    /// A well-formed key of a kind cosign does not sign with, or encrypted in a way cosign
    /// does not decrypt.
    #[error("{name}: {problem}")]
    Unsupported { name: String, problem: String },
    /// Not a key file: bad PEM, JSON, base64 or DER.
    #[error("{name}: {problem}")]
    Invalid { name: String, problem: String },
}

impl KeyError {
    /// The key file the error is about, as the caller named it.
    pub fn name(&self) -> &str {
        match self {
            KeyError::Read { name, .. }
            | KeyError::NeedsPassword { name }
            | KeyError::WrongPassword { name }
            | KeyError::Unsupported { name, .. }
            | KeyError::Invalid { name, .. } => name,
        }
    }
}

/// A private key to sign with. Its `Debug` shows the file name and the algorithm, never
/// the key.
pub struct SigningKey {
    name: String,
    key: Kind,
    public: PublicKey,
}

enum Kind {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(rsa::pkcs1v15::SigningKey<Sha256>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, {})", self.name, self.algorithm())
    }
}

/// The JSON inside an encrypted key's PEM body (go-securesystemslib's `encrypted`).
/// `params` stays a JSON value until the KDF's name says what it must hold.
#[derive(Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: Value,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

impl SigningKey {
    /// Reads a private key file; `password` as for [`SigningKey::from_pem`]. Messages call
    /// the file by `path` as given.
    pub fn load(path: &Path, password: Option<&[u8]>) -> Result<SigningKey, KeyError> {
        let name = path.display().to_string();
        let pem = read_key_file(path)?;
        SigningKey::from_pem(&name, &pem, password)
    }

    /// Parses a PEM private key: cosign's encrypted key (decrypted with `password`) or an
    /// unencrypted PKCS#8 `PRIVATE KEY`. `name` is what messages call the file (its path as
    /// given). `password`: `None` = the caller has none (an encrypted key then fails with
    /// [`KeyError::NeedsPassword`] so the caller can prompt or ask); `Some(b"")` is the empty
    /// password, which cosign allows. An unencrypted key ignores the password.
    pub fn from_pem(
        name: &str,
        pem: &[u8],
        password: Option<&[u8]>,
    ) -> Result<SigningKey, KeyError> {
        let invalid = |problem: String| KeyError::Invalid {
            name: name.to_string(),
            problem,
        };
        if find(pem, b"-----BEGIN ").is_none() {
            return Err(invalid(
                "not a PEM file (no -----BEGIN line): give a private key as cosign writes it \
                 (-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----) or PKCS#8 (-----BEGIN \
                 PRIVATE KEY-----)"
                    .to_string(),
            ));
        }
        let (label, body) = pem_block(pem).map_err(invalid)?;
        let der = match label.as_str() {
            l if ENCRYPTED_LABELS.contains(&l) => {
                let Some(password) = password else {
                    return Err(KeyError::NeedsPassword {
                        name: name.to_string(),
                    });
                };
                decrypt(name, &body, password)?
            }
            "PRIVATE KEY" => Zeroizing::new(body),
            "EC PRIVATE KEY" => return Err(sec1_refused(name, "PEM EC PRIVATE KEY")),
            "RSA PRIVATE KEY" => {
                return Err(KeyError::Unsupported {
                    name: name.to_string(),
                    problem: "holds a PKCS#1 RSA PRIVATE KEY; give it as PKCS#8 (`openssl \
                              pkcs8 -topk8 -nocrypt -in FILE`) or import it with `cosign \
                              import-key-pair`"
                        .to_string(),
                })
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError::Unsupported {
                    name: name.to_string(),
                    problem: "holds a password-protected PKCS#8 key (ENCRYPTED PRIVATE KEY), \
                              which cosign does not read; import it with `cosign \
                              import-key-pair`, or decrypt it with `openssl pkcs8`"
                        .to_string(),
                })
            }
            l if l.contains("PUBLIC KEY") || l == "CERTIFICATE" => {
                return Err(invalid(format!(
                    "holds a {l}, not a private key; signing takes the private key \
                     (cosign's `.key` file)"
                )))
            }
            l => return Err(invalid(format!("holds a PEM {l}, not a private key"))),
        };
        from_pkcs8(name, &der)
    }

    /// Whether `pem` is one of cosign's encrypted keys (so a password is needed), judged
    /// by its first PEM block's label; tells the CLI whether to ask for a password.
    pub fn is_encrypted_pem(pem: &[u8]) -> bool {
        pem_block(pem).is_ok_and(|(label, _)| ENCRYPTED_LABELS.contains(&label.as_str()))
    }

    /// Whether the first PEM block of `pem` is a private key of any kind (its label ends
    /// in `PRIVATE KEY`): where a public or a private key is taken, this tells them apart.
    pub fn is_private_pem(pem: &[u8]) -> bool {
        pem_block(pem).is_ok_and(|(label, _)| label.ends_with("PRIVATE KEY"))
    }

    /// This key's signature of `message`, raw, as cosign stores it (base64 in the
    /// `dev.cosignproject.cosign/signature` annotation, or in a DSSE envelope):
    /// ECDSA P-256 over SHA-256 and P-384 over SHA-256, ASN.1 DER (P-384 with SHA-256 as
    /// cosign 2 and SingularityCE sign it, and as `cosign verify --key` and SingularityCE
    /// check it by default; src/cosign/public_key.rs accepts it first); Ed25519 pure; RSA
    /// PKCS#1 v1.5 with SHA-256.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Kind::P256(key) => {
                let sig: p256::ecdsa::Signature = key.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Kind::P384(key) => {
                let sig: p384::ecdsa::Signature = key
                    .sign_prehash(&Sha256::digest(message))
                    .expect(
                    "a 32-byte prehash is at least half of P-384's field size, as ECDSA requires",
                );
                sig.to_der().as_bytes().to_vec()
            }
            Kind::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Kind::Rsa(key) => key.sign(message).to_vec(),
        }
    }

    /// The public key that verifies this key's signatures, named as this key is.
    pub fn public_key(&self) -> PublicKey {
        self.public.clone()
    }

    /// What messages call the key file.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Kind::P256(_) => "ECDSA P-256",
            Kind::P384(_) => "ECDSA P-384",
            Kind::Ed25519(_) => "Ed25519",
            Kind::Rsa(_) => "RSA",
        }
    }
}

/// Reads at most `MAX_KEY_FILE` bytes, kept in memory that is wiped when dropped.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let name = path.display().to_string();
    let read = |source| KeyError::Read {
        name: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::Invalid {
            name,
            problem: format!("larger than {} KiB: not a PEM key", MAX_KEY_FILE / 1024),
        });
    }
    Ok(bytes)
}

fn sec1_refused(name: &str, what: &str) -> KeyError {
    KeyError::Unsupported {
        name: name.to_string(),
        problem: format!(
            "the key is SEC1 ({what}), which cosign refuses: it takes PKCS#8 only (convert \
             with `openssl pkcs8 -topk8 -nocrypt -in FILE`, or `cosign import-key-pair`)"
        ),
    }
}

/// Opens cosign's encrypted key (COSIGN.md's construction, docs/FORMAT.md, Private keys):
/// the PEM body is JSON naming scrypt and NaCl secretbox; the result is PKCS#8 DER.
fn decrypt(name: &str, body: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let invalid = |problem: String| KeyError::Invalid {
        name: name.to_string(),
        problem: format!("encrypted cosign key: {problem}"),
    };
    let unsupported = |problem: String| KeyError::Unsupported {
        name: name.to_string(),
        problem: format!("encrypted cosign key: {problem}"),
    };
    let e: Encrypted = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("its PEM body is not the expected JSON: {e}")))?;
    if e.kdf.name != "scrypt" {
        return Err(unsupported(format!(
            "key derivation {:?} is not scrypt, the only one cosign uses",
            e.kdf.name
        )));
    }
    if e.cipher.name != "nacl/secretbox" {
        return Err(unsupported(format!(
            "cipher {:?} is not nacl/secretbox, the only one cosign uses",
            e.cipher.name
        )));
    }
    let params: ScryptParams = serde_json::from_value(e.kdf.params)
        .map_err(|e| invalid(format!("scrypt params are not {{N, r, p}} integers: {e}")))?;
    if !SCRYPT_N.contains(&params.n) || params.r != SCRYPT_R || params.p != SCRYPT_P {
        return Err(unsupported(format!(
            "scrypt N={} r={} p={} is not a parameter set cosign decrypts (N=32768, 65536 \
             or 131072, with r=8 p=1)",
            params.n, params.r, params.p
        )));
    }
    let salt = decode_base64_bytes(e.kdf.salt.as_bytes())
        .map_err(|p| invalid(format!("salt is not base64: {p}")))?;
    let nonce = decode_base64_bytes(e.cipher.nonce.as_bytes())
        .map_err(|p| invalid(format!("nonce is not base64: {p}")))?;
    if nonce.len() != NONCE_LEN {
        return Err(invalid(format!(
            "nonce is {} bytes, not the {NONCE_LEN} of nacl/secretbox",
            nonce.len()
        )));
    }
    let sealed = decode_base64_bytes(e.ciphertext.as_bytes())
        .map_err(|p| invalid(format!("ciphertext is not base64: {p}")))?;
    if sealed.len() < TAG_LEN {
        return Err(invalid(format!(
            "ciphertext is {} bytes, shorter than nacl/secretbox's {TAG_LEN}-byte tag",
            sealed.len()
        )));
    }
    // N is one of SCRYPT_N, all powers of two.
    let log_n = params.n.trailing_zeros() as u8;
    let scrypt_params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| unsupported(format!("scrypt parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, &salt, &scrypt_params, key.as_mut())
        .map_err(|e| unsupported(format!("scrypt: {e}")))?;
    let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key.as_ref()));
    // Go's secretbox.Open and this crate both put the Poly1305 tag before the ciphertext.
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            sealed.as_slice(),
        )
        .map(Zeroizing::new)
        .map_err(|_| KeyError::WrongPassword {
            name: name.to_string(),
        })
}

/// A PKCS#8 `PrivateKeyInfo` of one of the kinds cosign signs with.
fn from_pkcs8(name: &str, der: &[u8]) -> Result<SigningKey, KeyError> {
    let invalid = |what: &str, e: &dyn fmt::Display| KeyError::Invalid {
        name: name.to_string(),
        problem: format!("not a valid {what} private key: {e}"),
    };
    let unsupported = |problem: String| KeyError::Unsupported {
        name: name.to_string(),
        problem,
    };
    let info = match pkcs8::PrivateKeyInfo::from_der(der) {
        Ok(info) => info,
        Err(e) => {
            // cosign's own test key `pemcosigneckey` is SEC1 inside the encryption: say so
            // rather than that the DER is broken.
            if p256::SecretKey::from_sec1_der(der).is_ok()
                || p384::SecretKey::from_sec1_der(der).is_ok()
            {
                return Err(sec1_refused(name, "EC PRIVATE KEY DER"));
            }
            return Err(invalid("PKCS#8", &e));
        }
    };
    let oid = info.algorithm.oid;
    let key = if oid == OID_EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|e| invalid("EC (no named curve)", &e))?;
        if curve == OID_P256 {
            Kind::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| invalid("ECDSA P-256", &e))?,
            )
        } else if curve == OID_P384 {
            Kind::P384(
                p384::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| invalid("ECDSA P-384", &e))?,
            )
        } else {
            return Err(unsupported(format!(
                "unsupported elliptic curve {curve} (supported: P-256, P-384)"
            )));
        }
    } else if oid == OID_ED25519 {
        Kind::Ed25519(
            ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|e| invalid("Ed25519", &e))?,
        )
    } else if oid == OID_RSA {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| invalid("RSA", &e))?;
        Kind::Rsa(rsa::pkcs1v15::SigningKey::new(key))
    } else {
        return Err(unsupported(format!(
            "unsupported key algorithm {oid} (supported: ECDSA P-256 and P-384, Ed25519, RSA)"
        )));
    };
    let spki = public_spki(&key).map_err(|e| invalid("(its public half)", &e))?;
    let public = PublicKey::from_spki_der(name, spki).map_err(|e| KeyError::Invalid {
        name: name.to_string(),
        problem: format!("its public half: {e}"),
    })?;
    Ok(SigningKey {
        name: name.to_string(),
        key,
        public,
    })
}

/// The PKIX `SubjectPublicKeyInfo` DER of the key's public half, the form PublicKey reads.
fn public_spki(key: &Kind) -> Result<Vec<u8>, spki::Error> {
    let ec = |curve: &ObjectIdentifier, point: &[u8]| -> Result<Vec<u8>, spki::Error> {
        let info = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_EC_PUBLIC_KEY,
                parameters: Some(curve.into()),
            },
            subject_public_key: BitStringRef::from_bytes(point)?,
        };
        Ok(info.to_der()?)
    };
    match key {
        Kind::P256(k) => ec(
            &OID_P256,
            k.verifying_key().to_encoded_point(false).as_bytes(),
        ),
        Kind::P384(k) => ec(
            &OID_P384,
            k.verifying_key().to_encoded_point(false).as_bytes(),
        ),
        Kind::Ed25519(k) => {
            let public = k.verifying_key();
            let info = SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: OID_ED25519,
                    parameters: None,
                },
                subject_public_key: BitStringRef::from_bytes(public.as_bytes())?,
            };
            Ok(info.to_der()?)
        }
        Kind::Rsa(k) => {
            let public: &rsa::RsaPrivateKey = k.as_ref();
            Ok(rsa::RsaPublicKey::from(public)
                .to_public_key_der()
                .map_err(|e| match e {
                    rsa::pkcs8::spki::Error::Asn1(e) => spki::Error::Asn1(e),
                    _ => spki::Error::KeyMalformed,
                })?
                .into_vec())
        }
    }
}
