//! The options that say whom to trust (the man page, VERIFYING), with cosign's names, and
//! turning them into a [`Trust`] before anything is mounted or read.

use std::cell::OnceCell;
use std::path::PathBuf;

use clap::Args;
use std::sync::Arc;

use sifmount::cosign::{Identity, Matcher, PublicKey, SigningKey, Trust, TrustRoot};

use crate::fatal::Fatal;
use crate::keys::{is_private_key_file, load_signing_key};

#[derive(Debug, Default, Args)]
pub struct TrustArgs {
    /// Verify cosign entries with this PEM public key (ECDSA P-256/P-384, Ed25519 or RSA,
    /// as `cosign generate-key-pair` writes it), or with the public half of a private key
    /// (cosign's encrypted .key, or PKCS#8); repeatable. Each entry under /cosign then has
    /// a `verified` file. With --sign: the private key to sign with.
    #[arg(long = "key", value_name = "KEY", value_hint = clap::ValueHint::FilePath)]
    pub keys: Vec<PathBuf>,

    /// Keyless entries verify when their Fulcio certificate was issued to this identity
    /// (an email address or URI, exactly); needs an OIDC issuer option too.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,

    /// Like --certificate-identity, with a regular expression (RE2 syntax, matched
    /// anywhere unless anchored with ^ and $).
    #[arg(long, value_name = "RE")]
    pub certificate_identity_regexp: Option<String>,

    /// The OIDC issuer the certificate must name (extension 1.3.6.1.4.1.57264.1.8 or
    /// .1.1), exactly; needs an identity option too.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    pub certificate_oidc_issuer: Option<String>,

    /// Like --certificate-oidc-issuer, with a regular expression.
    #[arg(long, value_name = "RE")]
    pub certificate_oidc_issuer_regexp: Option<String>,

    /// The Sigstore trusted_root.json to verify certificates and log entries against
    /// (default: the Sigstore public-good root, built in).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub trusted_root: Option<PathBuf>,

    /// Do not check transparency-log entries (SETs, inclusion proofs); a keyless
    /// signature then needs another proof of when it was made, and fails without one.
    #[arg(long)]
    pub insecure_ignore_tlog: bool,

    /// The private keys among `keys`, with their paths, once loaded (each asks for its
    /// password at most once).
    #[arg(skip)]
    private: OnceCell<Vec<(PathBuf, Arc<SigningKey>)>>,
}

impl TrustArgs {
    /// Whether any of these options was given (they are refused where they do nothing).
    pub fn any(&self) -> bool {
        !self.keys.is_empty()
            || self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some()
            || self.trusted_root.is_some()
            || self.insecure_ignore_tlog
    }

    /// The trust these options give. Every file is read and every pattern compiled here,
    /// so a mistake is reported before anything is mounted or read.
    pub fn load(&self) -> Result<Trust, Fatal> {
        let private = self.private_keys()?;
        let keys = self
            .keys
            .iter()
            .map(|p| match private.iter().find(|(q, _)| q == p) {
                Some((_, key)) => Ok(key.public_key()),
                None => PublicKey::load(p).map_err(|e| Fatal::failure(e.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let subject = matcher(
            &self.certificate_identity,
            &self.certificate_identity_regexp,
            "--certificate-identity-regexp",
        )?;
        let issuer = matcher(
            &self.certificate_oidc_issuer,
            &self.certificate_oidc_issuer_regexp,
            "--certificate-oidc-issuer-regexp",
        )?;
        let identity = match (subject, issuer) {
            (Some(subject), Some(issuer)) => Some(Identity { subject, issuer }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Fatal::usage(
                    "a certificate identity needs an issuer: give --certificate-oidc-issuer \
                     or --certificate-oidc-issuer-regexp too (as cosign requires)",
                ))
            }
            (None, Some(_)) => {
                return Err(Fatal::usage(
                    "an OIDC issuer needs an identity: give --certificate-identity or \
                     --certificate-identity-regexp too (as cosign requires)",
                ))
            }
        };
        if keys.is_empty() && identity.is_none() {
            let given = if self.trusted_root.is_some() {
                "--trusted-root"
            } else {
                "--insecure-ignore-tlog"
            };
            return Err(Fatal::usage(format!(
                "{given} says how to verify, but nothing is verified without --key or a \
                 certificate identity (--certificate-identity with --certificate-oidc-issuer)"
            )));
        }
        let root = match &self.trusted_root {
            Some(path) => Some(
                TrustRoot::load(path)
                    .map_err(|e| Fatal::failure(format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        Ok(Trust {
            keys,
            identity,
            root,
            ignore_tlog: self.insecure_ignore_tlog,
        })
    }
}

impl TrustArgs {
    /// The first private key given with `--key`, if any, loaded (and decrypted: its
    /// password is asked for here, or taken from COSIGN_PASSWORD) so that a mount can sign
    /// with it later. Its public half also verifies, as [`TrustArgs::load`] uses it.
    pub fn signing_key(&self) -> Result<Option<Arc<SigningKey>>, Fatal> {
        Ok(self.private_keys()?.first().map(|(_, key)| Arc::clone(key)))
    }

    fn private_keys(&self) -> Result<&[(PathBuf, Arc<SigningKey>)], Fatal> {
        if let Some(loaded) = self.private.get() {
            return Ok(loaded);
        }
        let mut loaded = Vec::new();
        for path in self.keys.iter().filter(|p| is_private_key_file(p)) {
            if !loaded.iter().any(|(q, _)| q == path) {
                loaded.push((path.clone(), Arc::new(load_signing_key(path)?)));
            }
        }
        Ok(self.private.get_or_init(|| loaded))
    }
}

fn matcher(
    exact: &Option<String>,
    regexp: &Option<String>,
    option: &str,
) -> Result<Option<Matcher>, Fatal> {
    match (exact, regexp) {
        (Some(value), _) => Ok(Some(Matcher::Exact(value.clone()))),
        (None, Some(pattern)) => Matcher::regex(pattern).map(Some).map_err(|e| {
            Fatal::usage(format!("{option} {pattern}: not a regular expression: {e}"))
        }),
        (None, None) => Ok(None),
    }
}
