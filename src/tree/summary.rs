//! `/cosign/SUMMARY` and `/cosign/summary.json` (the man page, THE SUMMARY): per image,
//! its signatures, attestations, SBOMs and referrers, in the shape of `cosign tree`'s
//! output for a person and as JSON for scripts, with whether it is signed and, when the
//! mount verifies, whether it is verified (docs/SUMMARY.md has the schema and why).
//!
//! Both are made with the tree, so every rebuild (after a commit or a refresh) makes them
//! anew, and their content decides their inode (`inodes.rs`): a reader never gets the
//! summary of an image that is no longer there.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::build::Builder;
use super::cosign_dir::vouches;
use super::Ino;
use crate::cosign::{Entry, EntryKind, Verdict};
use crate::sif::Digest;

/// The summary a person reads, in `/cosign`.
pub const SUMMARY_TEXT: &str = "SUMMARY";

/// The same as JSON, in `/cosign`.
pub const SUMMARY_JSON: &str = "summary.json";

/// The most entries the summary lists: a hostile image can have 100,000 entries, and a
/// line of about 150 bytes each (twice that in JSON) would make each rebuild write tens
/// of megabytes. The rest are counted (`omitted_entries`, and a last line of the text).
pub const MAX_SUMMARY_ENTRIES: usize = 10_000;

/// The most images (and other targets) the summary lists, for the same reason: a root
/// index can list 100,000 images.
pub const MAX_SUMMARY_TARGETS: usize = 10_000;

/// The version of the JSON schema (docs/SUMMARY.md); raised only by changes that break
/// readers of the old one.
const SCHEMA_VERSION: u32 = 1;

/// The whole of `summary.json`.
#[derive(Serialize)]
struct Summary {
    schema: u32,
    /// Whether the mount verifies (a `--key` or certificate identity was given).
    verifying: bool,
    /// How many entries `/cosign` holds, listed or not.
    entries: usize,
    /// Each top-level image under `/images`, in root-index order.
    images: Vec<Target>,
    /// What entries are about that is not a top-level image: a platform's manifest of
    /// a multi-arch image, or a digest the image does not show.
    other_targets: Vec<Target>,
    /// Entries and targets past [`MAX_SUMMARY_ENTRIES`] and [`MAX_SUMMARY_TARGETS`].
    omitted_entries: usize,
    omitted_targets: usize,
}

/// One image, or another digest entries are about.
#[derive(Serialize)]
struct Target {
    /// Its name under `/images` (top-level images only).
    name: Option<String>,
    /// Where it is shown: `images/NAME` or `images/NAME/linux-amd64`; `None` when the
    /// image does not show it.
    path: Option<String>,
    digest: Digest,
    /// Whether it is itself a signature image or referrer (its layers are entries).
    holds_entries: bool,
    /// Whether any signature, attestation or sigstore bundle is about it.
    signed: bool,
    /// Whether one of those verifies; `None` when the mount does not verify.
    verified: Option<bool>,
    signatures: Vec<Listed>,
    attestations: Vec<Listed>,
    sboms: Vec<Listed>,
    referrers: Vec<Listed>,
}

/// One entry.
#[derive(Serialize)]
struct Listed {
    /// Its directory name in `/cosign`.
    entry: String,
    /// The layer's digest: the payload's.
    digest: Digest,
    media_type: String,
    /// The signature image's or referrer's manifest.
    manifest: Digest,
    /// Whether it verifies; `None` when the mount does not verify.
    verified: Option<bool>,
    /// The entry's `verified` file, one line; `None` when the mount does not verify.
    verdict: Option<String>,
    /// Whether it can sign its target ([`vouches`]): what the status line counts.
    #[serde(skip)]
    signs: bool,
}

impl Target {
    fn new(name: Option<String>, path: Option<String>, digest: Digest, holds: bool) -> Target {
        Target {
            name,
            path,
            digest,
            holds_entries: holds,
            signed: false,
            verified: None,
            signatures: Vec::new(),
            attestations: Vec::new(),
            sboms: Vec::new(),
            referrers: Vec::new(),
        }
    }

    fn list_mut(&mut self, kind: EntryKind) -> &mut Vec<Listed> {
        match kind {
            EntryKind::Signature => &mut self.signatures,
            EntryKind::Attestation => &mut self.attestations,
            EntryKind::Sbom => &mut self.sboms,
            EntryKind::Referrer => &mut self.referrers,
        }
    }

    /// How it is named in the text: its path, or its digest alone.
    fn shown(&self) -> String {
        match &self.path {
            Some(p) => p.clone(),
            None => format!("{} (not shown under /images)", self.digest),
        }
    }
}

impl Builder<'_> {
    /// `SUMMARY` and `summary.json` in `cosign_dir`, once every entry, its verdict and
    /// every image's directory are built.
    pub(super) fn summary_files(&mut self, cosign_dir: Ino) {
        let summary = self.summary();
        let mut json = serde_json::to_vec_pretty(&summary)
            .expect("serializing strings, numbers and digests to memory cannot fail");
        json.push(b'\n');
        self.generated(cosign_dir, SUMMARY_TEXT, text(&summary).into_bytes());
        self.generated(cosign_dir, SUMMARY_JSON, json);
    }

    fn summary(&self) -> Summary {
        let verifying = !self.options.trust.is_empty();
        let mut images = Vec::new();
        // Where each digest's target is in `images`; a digest under two names (two ref
        // names for one manifest) has its entries listed under both.
        let mut top: HashMap<Digest, Vec<usize>> = HashMap::new();
        let mut omitted_targets = 0;
        for image in &self.image_dirs {
            if images.len() >= MAX_SUMMARY_TARGETS {
                omitted_targets += 1;
                continue;
            }
            top.entry(image.digest).or_default().push(images.len());
            images.push(Target::new(
                Some(image.name.clone()),
                Some(format!("images/{}", image.name)),
                image.digest,
                image.holds_entries,
            ));
        }
        let mut others: Vec<Target> = Vec::new();
        let mut other_at: HashMap<Digest, usize> = HashMap::new();
        let mut omitted_others: HashSet<Digest> = HashSet::new();
        let (mut listed, mut omitted_entries) = (0, 0);
        for (_, entry) in &self.cosign_entries {
            let verdict = self.verdicts.get(&entry.name);
            let places: Vec<&mut Target> = if let Some(at) = top.get(&entry.target) {
                // Distinct indexes in order, so each target is borrowed once.
                let mut rest = &mut images[..];
                let mut base = 0;
                let mut found = Vec::with_capacity(at.len());
                for &i in at {
                    let (_, tail) = std::mem::take(&mut rest).split_at_mut(i - base);
                    let (t, tail) = tail.split_first_mut().expect("an index into images");
                    found.push(t);
                    rest = tail;
                    base = i + 1;
                }
                found
            } else if let Some(&i) = other_at.get(&entry.target) {
                vec![&mut others[i]]
            } else if others.len() >= MAX_SUMMARY_TARGETS {
                omitted_others.insert(entry.target);
                omitted_entries += 1;
                continue;
            } else {
                other_at.insert(entry.target, others.len());
                let path = self.image_paths.get(&entry.target).cloned();
                others.push(Target::new(None, path, entry.target, false));
                vec![others.last_mut().expect("pushed just above")]
            };
            for t in places {
                if vouches(entry) {
                    t.signed = true;
                    if verifying {
                        let ok = verdict.is_some_and(Verdict::is_verified);
                        t.verified = Some(t.verified == Some(true) || ok);
                    }
                }
                if listed >= MAX_SUMMARY_ENTRIES {
                    omitted_entries += 1;
                    continue;
                }
                listed += 1;
                t.list_mut(entry.kind).push(listed_entry(entry, verdict));
            }
        }
        omitted_targets += omitted_others.len();
        for t in images.iter_mut().chain(others.iter_mut()) {
            if verifying && t.verified.is_none() {
                t.verified = Some(false);
            }
        }
        Summary {
            schema: SCHEMA_VERSION,
            verifying,
            entries: self.cosign_entries.len(),
            images,
            other_targets: others,
            omitted_entries,
            omitted_targets,
        }
    }
}

fn listed_entry(entry: &Entry, verdict: Option<&Verdict>) -> Listed {
    Listed {
        entry: entry.name.clone(),
        digest: entry.layer.digest,
        media_type: entry.layer.media_type.clone(),
        manifest: entry.manifest,
        verified: verdict.map(Verdict::is_verified),
        verdict: verdict.map(|v| one_line(&v.to_file_text())),
        signs: vouches(entry),
    }
}

/// A verdict's text on one line: reasons can hold a newline, and each entry is one line
/// of the summary.
fn one_line(text: &str) -> String {
    text.trim_end().replace(['\n', '\r'], " ")
}

/// The text of `SUMMARY`: a first line saying what the mount checks, then one block per
/// image in `cosign tree`'s shape (docs/SUMMARY.md shows one).
fn text(s: &Summary) -> String {
    let mut out = String::new();
    let images = s.images.len() + s.omitted_targets;
    out.push_str(&format!(
        "sifmount: {}, {} in /cosign; {}\n",
        count(images, "image", "images"),
        count(s.entries, "entry", "entries"),
        if s.verifying {
            "verified with the mount's --key or certificate identity"
        } else {
            "not verified (no --key or certificate identity given)"
        }
    ));
    for t in s.images.iter().chain(&s.other_targets) {
        out.push('\n');
        target_text(&mut out, t);
    }
    if s.omitted_entries > 0 || s.omitted_targets > 0 {
        out.push_str(&format!(
            "\n... and {} and {} more not listed: the summary lists at most \
             {MAX_SUMMARY_ENTRIES} entries and {MAX_SUMMARY_TARGETS} images (ls lists them all)\n",
            count(s.omitted_entries, "entry", "entries"),
            count(s.omitted_targets, "image", "images"),
        ));
    }
    out
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn target_text(out: &mut String, t: &Target) {
    let shown = t.shown();
    out.push_str(&format!(
        "📦 Supply Chain Security Related artifacts for an image: {shown}@{}\n",
        t.digest
    ));
    out.push_str(&format!("└── {}\n", status(t)));
    // cosign's tag of each kind, with the image's path as the repository.
    let repo = t.path.as_deref().map_or(String::new(), |p| format!("{p}:"));
    let tag = |suffix: &str| format!("{repo}sha256-{}.{suffix}", t.digest.hex());
    let sections = [
        ("🔐 Signatures for an image tag", &t.signatures, "sig"),
        ("💾 Attestations for an image tag", &t.attestations, "att"),
        ("📦 SBOMs for an image tag", &t.sboms, "sbom"),
    ];
    for (title, entries, suffix) in sections {
        if !entries.is_empty() {
            out.push_str(&format!("└── {title}: {}\n", tag(suffix)));
            layers_text(out, entries.iter());
        }
    }
    // Referrers one section per manifest, as cosign groups them; the manifest's
    // artifact type is not kept with an entry, so its first layer's media type stands
    // for it (for a sigstore bundle they are the same).
    let mut manifests: Vec<Digest> = Vec::new();
    for r in &t.referrers {
        if !manifests.contains(&r.manifest) {
            manifests.push(r.manifest);
        }
    }
    let at = t.path.as_deref().unwrap_or("");
    for m in manifests {
        let layers: Vec<&Listed> = t.referrers.iter().filter(|r| r.manifest == m).collect();
        out.push_str(&format!(
            "└── 🔗 {} artifacts via OCI referrer: {at}@{m}\n",
            layers[0].media_type
        ));
        layers_text(out, layers.into_iter());
    }
}

/// Whether the target is signed and verified, as `/images/NAME/signed` says it.
fn status(t: &Target) -> String {
    if !t.signed {
        let all = t.signatures.len() + t.attestations.len() + t.sboms.len() + t.referrers.len();
        let why = if t.holds_entries {
            "this image holds signatures: its layers are entries in /cosign"
        } else if all == 0 {
            "no signatures, attestations, SBOMs or referrers"
        } else {
            "no signature, attestation or sigstore bundle"
        };
        return format!("signed: no ({why})");
    }
    let signing = || {
        [&t.signatures, &t.attestations, &t.sboms, &t.referrers]
            .into_iter()
            .flatten()
            .filter(|e| e.signs)
    };
    let (ok, n) = (
        signing().filter(|e| e.verified == Some(true)).count(),
        signing().count(),
    );
    let listed = count(n, "signing entry listed", "signing entries listed");
    match t.verified {
        None => "signed: yes; verified: not checked (no --key or certificate identity given)"
            .to_string(),
        Some(true) => format!("signed: yes; verified: yes ({ok} of {listed})"),
        Some(false) => format!("signed: yes; verified: no (none of {listed})"),
    }
}

fn layers_text<'a>(out: &mut String, layers: impl ExactSizeIterator<Item = &'a Listed>) {
    let n = layers.len();
    for (i, l) in layers.enumerate() {
        let branch = if i + 1 == n { "└──" } else { "├──" };
        let verdict = match (l.verified, &l.verdict) {
            (Some(true), Some(v)) => format!(" ✅ {v}"),
            (_, Some(v)) => format!(" ❌ {v}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "   {branch} 🍒 {} {}{verdict}\n",
            l.digest, l.entry
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, signs: bool, verified: Option<bool>) -> Listed {
        Listed {
            entry: name.to_string(),
            digest: Digest::of(name.as_bytes()),
            media_type: "application/octet-stream".to_string(),
            manifest: Digest::of(b"manifest"),
            verified,
            verdict: verified.map(|ok| if ok { "ok: yes" } else { "failed: no" }.to_string()),
            signs,
        }
    }

    fn target() -> Target {
        let digest = Digest::of(b"image");
        Target::new(Some("x".into()), Some("images/x".into()), digest, false)
    }

    #[test]
    fn an_sbom_alone_does_not_sign_and_is_not_counted() {
        let mut t = target();
        t.sboms.push(listed("sbom-1", false, None));
        assert_eq!(
            status(&t),
            "signed: no (no signature, attestation or sigstore bundle)"
        );
        t.signed = true;
        t.verified = Some(true);
        t.signatures.push(listed("sig-1", true, Some(true)));
        t.sboms[0].verified = Some(false);
        assert_eq!(
            status(&t),
            "signed: yes; verified: yes (1 of 1 signing entry listed)"
        );
    }

    #[test]
    fn layers_are_drawn_as_cosign_does_with_entry_names_and_verdicts() {
        let mut t = target();
        t.signed = true;
        t.verified = Some(false);
        t.signatures.push(listed("sig-1", true, Some(false)));
        t.signatures.push(listed("sig-2", true, Some(false)));
        let mut out = String::new();
        target_text(&mut out, &t);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert!(lines[0].starts_with(
            "📦 Supply Chain Security Related artifacts for an image: images/x@sha256:"
        ));
        assert_eq!(
            lines[1],
            "└── signed: yes; verified: no (none of 2 signing entries listed)"
        );
        assert!(lines[2].starts_with("└── 🔐 Signatures for an image tag: images/x:sha256-"));
        assert!(lines[2].ends_with(".sig"));
        assert_eq!(
            lines[3],
            format!("   ├── 🍒 {} sig-1 ❌ failed: no", Digest::of(b"sig-1"))
        );
        assert_eq!(
            lines[4],
            format!("   └── 🍒 {} sig-2 ❌ failed: no", Digest::of(b"sig-2"))
        );
    }

    #[test]
    fn verdicts_are_one_line() {
        assert_eq!(one_line("failed: a\nb\r\n"), "failed: a b");
    }
}
