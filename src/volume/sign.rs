//! Signing in the mount (the man page, SIGNING): with a private key given at mount time,
//! `/cosign/sign/` takes requests. Each file closed there is one request, judged alone:
//!
//! * empty (`touch sign/NAME`): sign image NAME (its name under `/images`, or
//!   `sha256-<hex>`) with the payload `sifmount --sign` makes, SingularityCE's;
//! * a simple-signing payload: sign it as given;
//! * an in-toto statement: wrap it in a DSSE envelope and attach it as an attestation.
//!
//! What is made is attached with the same transaction as a drop (`commit.rs`), and the
//! request file goes: the new entry is in `/cosign`. A refused request stays, with
//! `NAME.error` beside it saying why, until it is removed or rewritten.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::staging::{Group, GroupState, StagedDir, TopGroup};
use super::{now, State};
use crate::cosign::{self, AttachError, Attachment, SigningKey};
use crate::sif::Digest;
use crate::tree::{Ino, TreeError};

/// The signing directory's name in `/cosign`.
pub const SIGN_DIR: &str = "sign";

/// What a payload made in the mount says made it (`optional.creator`).
pub const CREATOR: &str = concat!("sifmount/", env!("CARGO_PKG_VERSION"));

/// What a request file holds.
enum Request<'a> {
    /// Sign this image with SingularityCE's payload.
    Image(Digest),
    /// A simple-signing payload, signed as given.
    Payload(&'a [u8]),
    /// An in-toto statement, attested.
    Statement(&'a [u8]),
}

impl State {
    /// Adds `/cosign/sign/` (a volume with a signing key and a writer has one).
    pub(super) fn add_sign_dir(&mut self, key: Arc<SigningKey>) {
        let ino = self.table.fresh();
        let error_ino = self.table.fresh();
        self.staging.dirs.insert(
            ino,
            StagedDir {
                name: SIGN_DIR.to_string(),
                state: GroupState::Pending,
                error_ino,
                mtime: now(),
            },
        );
        self.staging.sign_dir = Some(ino);
        self.signing_key = Some(key);
    }

    pub(super) fn is_sign_dir(&self, ino: Ino) -> bool {
        self.staging.sign_dir == Some(ino)
    }

    /// A new request named `name`: it is judged afresh, whatever an earlier one of that
    /// name came to.
    pub(super) fn new_sign_request(&mut self, name: &str) {
        let error_ino = self.table.fresh();
        self.staging.sign_requests.insert(
            name.to_string(),
            TopGroup {
                state: GroupState::Pending,
                error_ino,
            },
        );
    }

    /// The close of request file `name` holding `data`: signs and attaches, or records
    /// why not.
    pub(super) fn sign_request(
        &mut self,
        name: &str,
        data: &[u8],
        shown: &str,
    ) -> Result<(), TreeError> {
        let group = Group::Sign(name.to_string());
        let fail = |st: &mut State, e: AttachError| {
            let reason = format!("{shown}: {e}");
            st.set_state(&group, GroupState::Failed(reason.clone()));
            TreeError::of_attach(e, reason)
        };
        let request = match self.request_of(name, data) {
            Ok(r) => r,
            Err(e) => return Err(fail(self, e)),
        };
        let key = self
            .signing_key
            .clone()
            .expect("a sign directory exists only with a signing key");
        let writer = self.writer.as_ref().ok_or(TreeError::ReadOnly)?;
        let made: Result<Attachment, AttachError> = match request {
            Request::Image(target) => {
                let payload =
                    cosign::singularity_payload(&target, CREATOR, now(), &BTreeMap::new());
                cosign::sign_payload(writer, &key, &payload)
            }
            Request::Payload(payload) => cosign::sign_payload(writer, &key, payload),
            Request::Statement(statement) => cosign::attest(writer, &key, statement),
        };
        // What signing read of the image is only trustworthy if the file is still ours.
        if let Err(e) = self.check_unchanged() {
            self.set_state(&group, GroupState::Failed(format!("{shown}: {e}")));
            return Err(e);
        }
        let attachment = match made {
            Ok(a) => a,
            Err(e) => return Err(fail(self, e)),
        };
        self.attach_made(&group, shown, &attachment)?;
        // Done: the name is free for the next request.
        self.staging.sign_requests.remove(name);
        Ok(())
    }

    /// What request file `name` asks for.
    fn request_of<'a>(&self, name: &str, data: &'a [u8]) -> Result<Request<'a>, AttachError> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return self.image_named(name).map(Request::Image);
        }
        let invalid = |problem: String| AttachError::Invalid {
            file: "request".to_string(),
            problem,
        };
        let value: serde_json::Value = serde_json::from_slice(data)
            .map_err(|e| invalid(format!("not JSON ({e}); {}", EXPECTED)))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid(format!("not a JSON object; {EXPECTED}")))?;
        if object.contains_key("critical") {
            Ok(Request::Payload(data))
        } else if object.contains_key("_type") {
            Ok(Request::Statement(data))
        } else {
            Err(invalid(format!(
                "neither a simple-signing payload (critical) nor an in-toto statement \
                 (_type); {EXPECTED}"
            )))
        }
    }

    /// The image an empty request file names: as under `/images`, or `sha256-<hex>`.
    fn image_named(&self, name: &str) -> Result<Digest, AttachError> {
        let images: Vec<_> = self
            .tree
            .images()
            .iter()
            .filter(|i| !i.holds_entries)
            .collect();
        if let Some(image) = images.iter().find(|i| i.name == name) {
            return Ok(image.digest);
        }
        if let Some(hex) = name.strip_prefix("sha256-") {
            if let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() {
                return Ok(digest);
            }
        }
        let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
        Err(AttachError::Invalid {
            file: "request".to_string(),
            problem: format!(
                "empty, so it names the image to sign, but no image is named {name:?}: \
                 the images are {} (or name one sha256-<hex>)",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        })
    }
}

const EXPECTED: &str = "a request is empty (touch sign/IMAGE), a simple-signing payload, \
                        or an in-toto statement";
