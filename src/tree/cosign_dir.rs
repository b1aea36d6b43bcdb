//! `/cosign/<entry>/`: one directory per signature, attestation, SBOM or referrer layer
//! (the man page, ATTACHING), with the payload, its annotations and what they mean as files.

use std::collections::{HashMap, HashSet};

use super::build::Builder;
use super::{Content, Ino};
use crate::cosign::{
    self, bundle_envelope, Entry, EntryKind, Envelope, Statement, Subject, ANNOTATION_FILES,
    BUNDLE_MEDIA_TYPE_PREFIX, DSSE_MEDIA_TYPE,
};
use crate::oci::OciSif;
use crate::sif::Digest;

/// Payloads larger than this are shown but not parsed for `statement.json` or verified
/// (cosign's own limit on attachments is 128 MiB; statements are kilobytes).
const MAX_PARSED_PAYLOAD: i64 = 16 << 20;

fn line(text: &str) -> Vec<u8> {
    format!("{text}\n").into_bytes()
}

fn pretty_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value)
        .expect("serializing strings and maps to memory cannot fail");
    out.push(b'\n');
    out
}

impl Builder<'_> {
    /// Every entry's directory under `cosign_dir`. Runs after `/images` is built, so that
    /// `target` can say where the target is shown.
    /// The entries are moved into the tree, not copied: 20,000 signatures are tens of
    /// megabytes of entries.
    pub(super) fn cosign_entries(&mut self, oci: &OciSif, cosign_dir: Ino, entries: Vec<Entry>) {
        let mut envelopes = HashMap::new();
        let mut verdicts = if self.options.trust.is_empty() {
            Vec::new()
        } else {
            verify_all(oci, &entries, &self.options.trust)
        }
        .into_iter();
        for entry in entries {
            let dir = self.subdir(cosign_dir, &entry.name);
            self.cosign_entry(oci, dir, &entry, &mut envelopes);
            if let Some(verdict) = verdicts.next() {
                self.generated(dir, "verified", verdict.to_file_text().into_bytes());
                self.verdicts.insert(entry.name.clone(), verdict);
            }
            self.cosign_entries.push((dir, entry));
        }
        self.image_signed_files();
        self.summary_files(cosign_dir);
    }

    /// `/images/<name>/signed` (the man page, THE TREE): whether the image is signed and,
    /// when the mount verifies, by how many entries, then each entry's verdict.
    fn image_signed_files(&mut self) {
        let mut about: HashMap<Digest, Vec<usize>> = HashMap::new();
        for (i, (_, entry)) in self.cosign_entries.iter().enumerate() {
            if vouches(entry) {
                about.entry(entry.target).or_default().push(i);
            }
        }
        let carriers: HashSet<Digest> = self
            .cosign_entries
            .iter()
            .map(|(_, e)| e.manifest)
            .collect();
        let verifying = !self.options.trust.is_empty();
        for i in 0..self.image_dirs.len() {
            let (dir, digest) = {
                let image = &self.image_dirs[i];
                (image.dir, image.digest)
            };
            let holds_entries = carriers.contains(&digest);
            self.image_dirs[i].holds_entries = holds_entries;
            let entries = about.get(&digest).map_or(&[][..], Vec::as_slice);
            let mut lines = Vec::new();
            let mut verified = Vec::new();
            let mut first_failure = None;
            for &e in entries {
                let name = &self.cosign_entries[e].1.name;
                match self.verdicts.get(name) {
                    Some(v) => {
                        let text = v.to_file_text();
                        if v.is_verified() {
                            verified.push(name.clone());
                        } else if first_failure.is_none() {
                            first_failure = Some(format!("{name}: {}", text.trim_end()));
                        }
                        lines.push(format!("{name}: {text}"));
                    }
                    None => lines.push(format!("{name}\n")),
                }
            }
            let n = entries.len();
            let count = |n: usize| {
                if n == 1 {
                    "1 entry".to_string()
                } else {
                    format!("{n} entries")
                }
            };
            let summary = if n == 0 && holds_entries {
                "unsigned: this image holds signatures (its entries are under /cosign)\n"
                    .to_string()
            } else if n == 0 {
                "unsigned: no signatures or attestations\n".to_string()
            } else if !verifying {
                format!(
                    "signed: {}; not verified (no --key or certificate identity given)\n",
                    count(n)
                )
            } else if verified.is_empty() {
                format!(
                    "failed: none of {} verifies; first {}\n",
                    count(n),
                    first_failure.unwrap_or_default()
                )
            } else {
                format!(
                    "verified: by {} of {} ({})\n",
                    verified.len(),
                    count(n),
                    verified.join(", ")
                )
            };
            let mut text = summary;
            for l in lines {
                text.push_str(&l);
            }
            self.generated(dir, "signed", text.into_bytes());
            self.image_dirs[i].verified = verifying.then_some(verified.len());
        }
    }

    fn cosign_entry(
        &mut self,
        oci: &OciSif,
        dir: Ino,
        entry: &Entry,
        envelopes: &mut HashMap<(Digest, bool), EnvelopeFiles>,
    ) {
        let annotations = entry.annotations();
        let payload = self.blobs.get(&entry.layer.digest).copied();
        match payload {
            Some(ino) => self.link(dir, "payload", ino),
            None => self.warn(format!(
                "cosign/{}: payload blob {} is not in the image",
                entry.name, entry.layer.digest
            )),
        }
        self.generated(dir, "annotations", pretty_json(&annotations));
        for (key, file) in ANNOTATION_FILES {
            if let Some(value) = annotations.get(key) {
                self.generated(dir, file, value.clone().into_bytes());
            }
        }
        let mut target = format!("{}\n", entry.target);
        if let Some(path) = self.image_paths.get(&entry.target) {
            target.push_str(&format!("{path}\n"));
        }
        self.generated(dir, "target", target.into_bytes());
        self.generated(dir, "media-type", line(&entry.layer.media_type));

        // Everything below needs the payload's bytes: read them only for envelopes and
        // when verifying, so that mounting an image with many signatures stays cheap.
        // An envelope is parsed once however many entries carry it: 100,000 layers can
        // name one 16 MiB payload, and each entry reading, decoding and holding its own
        // statement would take terabytes.
        let envelope_key = carries_envelope(entry).then(|| {
            let bundle =
                entry.kind != EntryKind::Attestation && entry.layer.media_type != DSSE_MEDIA_TYPE;
            (entry.layer.digest, bundle)
        });
        let known = envelope_key.and_then(|k| envelopes.get(&k).copied());
        let wanted = envelope_key.is_some() && known.is_none();
        let bytes = match payload.is_some() && wanted {
            true => match parsable_payload(oci, entry) {
                Ok(b) => b,
                Err(e) => {
                    self.warn(format!("cosign/{}: {e}", entry.name));
                    None
                }
            },
            false => None,
        };
        if let Some(key) = envelope_key {
            let files = match known {
                Some(files) => files,
                None => {
                    let files = self.envelope_files(bytes.as_deref(), entry);
                    envelopes.insert(key, files);
                    files
                }
            };
            if let Some(ino) = files.statement {
                self.link(dir, "statement.json", ino);
            }
            if let Some(ino) = files.predicate_type {
                self.link(dir, "predicate-type", ino);
            }
        }
    }
}

/// The payload's bytes, when it is in the image and small enough to parse. The stored
/// size counts, not the one the layer descriptor claims: a descriptor that says 10 bytes
/// must not make the mount read and parse 60 MB.
fn parsable_payload(oci: &OciSif, entry: &Entry) -> Result<Option<Vec<u8>>, crate::oci::OciError> {
    match oci.blob(&entry.layer.digest) {
        Some(d) if d.size <= MAX_PARSED_PAYLOAD => oci.read_blob(&entry.layer.digest).map(Some),
        _ => Ok(None),
    }
}

/// Every entry's verdict, in order. Keyless entries cost milliseconds each (elliptic
/// curve arithmetic, docs/BENCHMARKS.md), so the entries are shared among one thread per
/// core: they are independent, and a mount with a thousand signatures is ready in a
/// fraction of the time.
fn verify_all(oci: &OciSif, entries: &[Entry], trust: &cosign::Trust) -> Vec<cosign::Verdict> {
    let one = |entry: &Entry| match parsable_payload(oci, entry) {
        Ok(Some(bytes)) => cosign::verify(
            &Subject {
                kind: entry.kind,
                media_type: &entry.layer.media_type,
                payload: &bytes,
                recorded_digest: &entry.layer.digest,
                annotations: &entry.annotations(),
                target: &entry.target,
            },
            trust,
        ),
        Ok(None) => cosign::Verdict::Failed {
            reason: "the payload is not in the image, or too large to parse".to_string(),
        },
        Err(e) => cosign::Verdict::Failed {
            reason: format!("the payload could not be read: {e}"),
        },
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(entries.len().div_ceil(VERIFIED_PER_THREAD))
        .max(1);
    if threads == 1 {
        return entries.iter().map(one).collect();
    }
    let chunk = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = entries
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(verdicts) => verdicts,
                // A verifier's panic (a bug) goes on in this thread, as if the entry had
                // been verified here.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Fewer entries than this per thread are verified in the building thread alone.
const VERIFIED_PER_THREAD: usize = 8;

/// Whether an entry can vouch for its target: signatures, attestations and sigstore
/// bundles; an SBOM or another referrer carries no signature.
pub(super) fn vouches(entry: &Entry) -> bool {
    match entry.kind {
        EntryKind::Signature | EntryKind::Attestation => true,
        EntryKind::Sbom => false,
        EntryKind::Referrer => entry.layer.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX),
    }
}

/// The files made from one payload's envelope, shared by the entries that carry it.
#[derive(Clone, Copy, Default)]
pub(super) struct EnvelopeFiles {
    statement: Option<Ino>,
    predicate_type: Option<Ino>,
}

impl Builder<'_> {
    /// `statement.json` and `predicate-type` of an envelope payload, not yet linked.
    fn envelope_files(&mut self, payload: Option<&[u8]>, entry: &Entry) -> EnvelopeFiles {
        let Some(envelope) = payload.and_then(|b| envelope_of(entry, b)) else {
            return EnvelopeFiles::default();
        };
        let predicate = Statement::parse(&envelope.payload)
            .ok()
            .and_then(|s| s.predicate_type);
        let (mtime, crtime) = (self.mtime, self.crtime);
        let statement = self.file(
            Content::Bytes(envelope.payload.into_boxed_slice()),
            mtime,
            crtime,
        );
        let predicate_type = predicate
            .map(|p| self.file(Content::Bytes(line(&p).into_boxed_slice()), mtime, crtime));
        EnvelopeFiles {
            statement: Some(statement),
            predicate_type,
        }
    }
}

/// Whether an entry's payload may hold a DSSE envelope (an attestation, or a bundle).
fn carries_envelope(entry: &Entry) -> bool {
    let mt = entry.layer.media_type.as_str();
    entry.kind == EntryKind::Attestation
        || mt == DSSE_MEDIA_TYPE
        || mt.starts_with(BUNDLE_MEDIA_TYPE_PREFIX)
}

/// The DSSE envelope an entry carries: an attestation layer, or a sigstore bundle whose
/// content is an envelope.
fn envelope_of(entry: &Entry, payload: &[u8]) -> Option<Envelope> {
    let mt = entry.layer.media_type.as_str();
    if entry.kind == EntryKind::Attestation || mt == DSSE_MEDIA_TYPE {
        Envelope::parse(payload).ok()
    } else if mt.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        bundle_envelope(payload).ok().flatten()
    } else {
        None
    }
}
