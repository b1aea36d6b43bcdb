//! The cryptography the sigstore crates verify with, from the RustCrypto crates sifmount
//! already verifies public-key signatures with: no C library to build, and the same
//! code checks a signature whether or not a transparency log is involved. Verification
//! only: sifmount signs nothing through the sigstore crates.

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use sha2::Digest as _;
use sigstore_crypto::{CryptoProvider, Error, HashContext, Result, SigningScheme};
use sigstore_types::HashAlgorithm;

/// The one provider, installed before the first verifier is made ([`install`]).
static RUST_CRYPTO: RustCrypto = RustCrypto;

/// Installs the provider for the process. Idempotent; the sigstore crates are built
/// without their default backend, so nothing else can have been installed first.
pub(super) fn install() {
    let _ = sigstore_crypto::install_default_provider(&RUST_CRYPTO);
}

#[derive(Debug)]
struct RustCrypto;

enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl HashContext for Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finalize(self: Box<Self>) -> Vec<u8> {
        match *self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

fn digest(algorithm: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    match algorithm {
        HashAlgorithm::Sha2256 => sha2::Sha256::digest(data).to_vec(),
        HashAlgorithm::Sha2384 => sha2::Sha384::digest(data).to_vec(),
        HashAlgorithm::Sha2512 => sha2::Sha512::digest(data).to_vec(),
        // Not exhaustive across releases of sigstore-types; an unknown hash gives a
        // digest no key accepts.
        _ => Vec::new(),
    }
}

fn invalid(scheme: SigningScheme) -> Error {
    Error::Verification(format!("{} signature invalid", scheme.name()))
}

fn bad_key(scheme: SigningScheme, e: impl std::fmt::Display) -> Error {
    Error::InvalidKey(format!("not a {} public key: {e}", scheme.name()))
}

impl CryptoProvider for RustCrypto {
    fn hash(&self, algorithm: HashAlgorithm) -> Result<Box<dyn HashContext>> {
        Ok(Box::new(match algorithm {
            HashAlgorithm::Sha2256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha2384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha2512 => Hasher::Sha512(sha2::Sha512::new()),
            other => {
                return Err(Error::UnsupportedAlgorithm(format!(
                    "{other:?} is not supported by sifmount"
                )))
            }
        }))
    }

    fn verify_raw(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        data: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        match scheme.hash_algorithm() {
            Some(algorithm) => {
                self.verify_prehashed(scheme, key, &digest(algorithm, data), signature)
            }
            None if scheme == SigningScheme::Ed25519 => {
                let key: [u8; 32] = key
                    .try_into()
                    .map_err(|_| bad_key(scheme, "not 32 bytes"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
                    .map_err(|e| bad_key(scheme, e))?;
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| invalid(scheme))?;
                // As Go's ed25519.Verify, which cosign uses: not the stricter check.
                ed25519_dalek::Verifier::verify(&key, data, &sig).map_err(|_| invalid(scheme))
            }
            None => Err(Error::UnsupportedAlgorithm(format!(
                "{} is not supported by sifmount",
                scheme.name()
            ))),
        }
    }

    fn verify_prehashed(
        &self,
        scheme: SigningScheme,
        key: &[u8],
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        use SigningScheme::*;
        match scheme {
            EcdsaP256Sha256 | EcdsaP256Sha384 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                    .map_err(|e| bad_key(scheme, e))?;
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
                key.verify_prehash(digest, &sig)
                    .map_err(|_| invalid(scheme))
            }
            EcdsaP384Sha256 | EcdsaP384Sha384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(key)
                    .map_err(|e| bad_key(scheme, e))?;
                let sig =
                    p384::ecdsa::Signature::from_der(signature).map_err(|_| invalid(scheme))?;
                key.verify_prehash(digest, &sig)
                    .map_err(|_| invalid(scheme))
            }
            RsaPkcs1Sha256 | RsaPkcs1Sha384 | RsaPkcs1Sha512 | RsaPssSha256 | RsaPssSha384
            | RsaPssSha512 => {
                let key = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|e| bad_key(scheme, e))?;
                let ok = match scheme {
                    RsaPkcs1Sha256 => {
                        key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
                    }
                    RsaPkcs1Sha384 => {
                        key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature)
                    }
                    RsaPkcs1Sha512 => {
                        key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature)
                    }
                    RsaPssSha256 => key.verify(rsa::Pss::new::<sha2::Sha256>(), digest, signature),
                    RsaPssSha384 => key.verify(rsa::Pss::new::<sha2::Sha384>(), digest, signature),
                    _ => key.verify(rsa::Pss::new::<sha2::Sha512>(), digest, signature),
                };
                ok.map_err(|_| invalid(scheme))
            }
            _ => Err(Error::UnsupportedAlgorithm(format!(
                "{} is not supported by sifmount",
                scheme.name()
            ))),
        }
    }
}
