//! `--sign IMAGE --key KEY`: `singularity sign --cosign --key` without mounting (the man
//! page, SIGNING). SingularityCE's payload about the chosen image (and, with
//! `--recursive`, each manifest of its index), signed with the key and attached with the
//! same checks and transaction as a signature dropped into a mount's `/cosign`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use sifmount::cosign::{
    attach, discover, sign_payload, singularity_payload, AttachOutcome, Attachment, SigningKey,
    CREATOR_KEY, TIMESTAMP_KEY,
};
use sifmount::oci::{media_type, Index, OciSif, MAX_INDEX_DEPTH};
use sifmount::sif::{Digest, OpenMode, WriterLock};
use sifmount::tree::{ImageTrust, Tree, TreeOptions};

use crate::fatal::Fatal;

pub struct Request<'a> {
    pub image: &'a Path,
    pub key: &'a SigningKey,
    /// `-a KEY=VALUE`, as given.
    pub annotations: &'a [String],
    /// `--image`: a name under /images, a digest, or a digest's leading hex digits.
    pub select: Option<&'a str>,
    pub recursive: bool,
}

/// What the payload's `optional.creator` says: this program and its version, as
/// SingularityCE writes its user agent there.
pub fn creator() -> String {
    format!("sifmount/{}", env!("CARGO_PKG_VERSION"))
}

/// Parses `-a KEY=VALUE` options (split at the first `=`, as cosign does; a repeated key
/// takes the last value, as cosign's map does). `creator` and `timestamp` are refused:
/// SingularityCE's payload always has them, filled by the signer.
pub fn parse_annotations(given: &[String]) -> Result<BTreeMap<String, String>, Fatal> {
    let mut out = BTreeMap::new();
    for a in given {
        let Some((key, value)) = a.split_once('=') else {
            return Err(Fatal::usage(format!("-a {a}: an annotation is KEY=VALUE")));
        };
        if key.is_empty() {
            return Err(Fatal::usage(format!("-a {a}: the annotation has no key")));
        }
        if key == CREATOR_KEY || key == TIMESTAMP_KEY {
            return Err(Fatal::usage(format!(
                "-a {a}: {key} is set by sifmount (creator {}, timestamp the time of \
                 signing), as SingularityCE sets it; choose another key",
                creator()
            )));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// Signs, writing one line per signature made to `out`.
pub fn sign(request: Request<'_>, out: &mut dyn Write) -> Result<(), Fatal> {
    let image = request.image;
    let shown = image.display().to_string();
    let failure = |e: &dyn std::fmt::Display| Fatal::failure(e.to_string());
    let annotations = parse_annotations(request.annotations)?;
    // As a read-write mount does (src/volume/mod.rs): lock, open for writing (finishing
    // an interrupted update), then read what is there, so nothing writes beside us.
    let lock = WriterLock::acquire(image).map_err(|e| failure(&e))?;
    let mut oci = OciSif::open(image, OpenMode::ReadWrite).map_err(|e| failure(&e))?;
    if oci.sif().storage().identity() != Some(lock.identity()) {
        return Err(Fatal::failure(format!(
            "{shown}: replaced by another file while it was being opened; try again"
        )));
    }
    let (tree, report) =
        Tree::open_with(image, &TreeOptions::default()).map_err(|e| failure(&e))?;
    for w in &report.warnings {
        log::warn!("{w}");
    }
    let chosen = choose(tree.images(), request.select, &shown)?;
    let mut targets = vec![chosen.digest];
    if request.recursive {
        platform_manifests(&oci, chosen.digest, &shown, &mut targets)?;
    }
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|e| Fatal::failure(format!("the clock is before 1970: {e}")))?;
    let creator = creator();
    // Every payload is checked against the image before the first is written.
    let attachments = targets
        .iter()
        .map(|target| {
            let payload = singularity_payload(target, &creator, timestamp, &annotations);
            sign_payload(&oci, request.key, &payload)
                .map_err(|e| Fatal::failure(format!("{shown}: signing {target}: {e}")))
        })
        .collect::<Result<Vec<Attachment>, Fatal>>()?;
    let io = |e: std::io::Error| Fatal::failure(format!("writing the report: {e}"));
    for a in &attachments {
        let outcome = attach(&mut oci, a)
            .map_err(|e| Fatal::failure(format!("{shown}: attaching to {}: {e}", a.target)))?;
        let entry = discover(&oci)
            .entries
            .into_iter()
            .find(|e| e.target == a.target && e.kind == a.kind && e.layer == a.layer)
            .map(|e| e.name)
            .unwrap_or_else(|| "?".to_string());
        let what = match outcome {
            AttachOutcome::Attached => "signed",
            AttachOutcome::Unchanged => "already signed with this very payload: unchanged",
        };
        writeln!(out, "{}: {what}: cosign/{entry}", a.target).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}

/// The image `--image` names or, without it, the one image that is not itself a
/// signature image or referrer.
fn choose<'t>(
    images: &'t [ImageTrust],
    select: Option<&str>,
    shown: &str,
) -> Result<&'t ImageTrust, Fatal> {
    let candidates: Vec<&ImageTrust> = images.iter().filter(|i| !i.holds_entries).collect();
    let list = |images: &[&ImageTrust]| {
        if images.is_empty() {
            "none".to_string()
        } else {
            images
                .iter()
                .map(|i| format!("{} ({})", i.name, i.digest))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let Some(want) = select else {
        return match candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(Fatal::failure(format!("{shown}: no image to sign"))),
            many => Err(Fatal::usage(format!(
                "{shown} has {} images: choose one with --image NAME|DIGEST (its images: {})",
                many.len(),
                list(many)
            ))),
        };
    };
    let hex = want.strip_prefix("sha256:").unwrap_or(want);
    let found: Vec<&ImageTrust> = match candidates.iter().find(|i| i.name == want) {
        Some(image) => vec![image],
        None => candidates
            .iter()
            .copied()
            .filter(|i| hex.len() >= 12 && i.digest.hex().starts_with(hex))
            .collect(),
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Fatal::usage(format!(
            "--image {want}: {shown} has no image of that name or digest (its images: {})",
            list(&candidates)
        ))),
        many => Err(Fatal::usage(format!(
            "--image {want}: {} images of {shown} have digests starting so; give more digits",
            many.len()
        ))),
    }
}

/// `--recursive`, as `cosign sign --recursive`: every manifest and index below the index
/// `top` (nothing when `top` is a manifest), depth-first in index order. Each must be in
/// the image: one that is not would stop the signing half-way.
fn platform_manifests(
    oci: &OciSif,
    top: Digest,
    shown: &str,
    out: &mut Vec<Digest>,
) -> Result<(), Fatal> {
    let mut todo = vec![(top, 0)];
    while let Some((digest, depth)) = todo.pop() {
        let bytes = oci
            .read_blob(&digest)
            .map_err(|e| Fatal::failure(format!("{shown}: reading {digest}: {e}")))?;
        // A manifest has no "manifests"; an index that does not parse is no index.
        let Ok(index) = Index::parse(&bytes) else {
            continue;
        };
        if depth >= MAX_INDEX_DEPTH {
            return Err(Fatal::failure(format!(
                "{shown}: indexes nested deeper than {MAX_INDEX_DEPTH} below {top}"
            )));
        }
        let mut children = Vec::new();
        for child in index.entries() {
            let mt = child.media_type.as_str();
            if !(media_type::is_index(mt) || media_type::is_manifest(mt)) {
                continue;
            }
            if oci.blob(&child.digest).is_none() {
                return Err(Fatal::failure(format!(
                    "{shown}: --recursive: {} (listed by {digest}) is not in the image, so it \
                     cannot be signed; sign without --recursive",
                    child.digest
                )));
            }
            if !out.contains(&child.digest) {
                out.push(child.digest);
                if media_type::is_index(mt) {
                    children.push((child.digest, depth + 1));
                }
            }
        }
        todo.extend(children.into_iter().rev());
    }
    Ok(())
}
