//! What an attach commits: a validated layer and the image it is about, as
//! [`prepare`](super::prepare) concludes it and `attach.rs` and `referrer.rs` write it.

use super::attach::AttachError;
use super::discover::EntryKind;
use super::verify::{verify, Subject, Trust, Verdict};
use crate::oci::Descriptor;
use crate::sif::Digest;

/// A validated layer ready to be written: what [`prepare`](super::prepare) concluded, so
/// that the commit itself ([`attach`](super::attach())) has nothing left to judge about
/// the user's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// [`EntryKind::Signature`] (`.sig`), [`EntryKind::Attestation`] (`.att`) or
    /// [`EntryKind::Referrer`] (a sigstore bundle, written by `referrer.rs`).
    pub kind: EntryKind,
    /// The manifest or index the payload is about, which names the `_cosign:` image.
    pub target: Digest,
    /// Media type, size and digest of the payload, and the layer annotations.
    pub layer: Descriptor,
    pub payload: Vec<u8>,
}

impl Attachment {
    /// Whether the entry this would make verifies under `trust`.
    pub fn verdict(&self, trust: &Trust) -> Verdict {
        let annotations = self.layer.annotations.clone().unwrap_or_default();
        verify(
            &Subject {
                kind: self.kind,
                media_type: &self.layer.media_type,
                payload: &self.payload,
                recorded_digest: &self.layer.digest,
                annotations: &annotations,
                target: &self.target,
            },
            trust,
        )
    }

    /// That the layer descriptor describes the payload's bytes (`noun` names them in the
    /// error): the fields are public, so the commit checks again what [`prepare`](super::prepare) did.
    pub(super) fn check_layer_bytes(&self, noun: &str) -> Result<(), AttachError> {
        let digest = Digest::of(&self.payload);
        if self.layer.digest != digest || self.layer.size != self.payload.len() as i64 {
            return Err(AttachError::invalid(
                "payload",
                format!(
                    "the layer descriptor says {} bytes with digest {}, but the {noun} is {} \
                     bytes with digest {digest}",
                    self.layer.size,
                    self.layer.digest,
                    self.payload.len()
                ),
            ));
        }
        Ok(())
    }
}
