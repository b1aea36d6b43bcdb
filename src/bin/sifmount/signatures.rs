//! `--verify IMAGE` with a key or certificate identity: the signature check of
//! `singularity verify --cosign` and `cosign verify` (the man page, VERIFYING). Every
//! image of the root index (or the one `--image` names) needs at least one entry that
//! verifies; one line per entry says what verified and why the others did not.

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use sifmount::cosign::{Signer, Trust, Verdict, REKOR_BUNDLE_ANNOTATION};
use sifmount::oci::OciSif;
use sifmount::sif::OpenMode;
use sifmount::tree::{ImageTrust, Tree, TreeOptions};

use crate::fatal::Fatal;

pub struct Request<'a> {
    pub image: &'a Path,
    pub trust: Trust,
    /// `--image`: a name under /images, a digest, or a digest's leading hex digits.
    pub select: Option<&'a str>,
    /// `--output json`: what verified, as JSON on `json_out`.
    pub json: bool,
}

/// Whether every chosen image has an entry that verifies. Lines go to `text`, JSON (with
/// `--output json`) to `json_out`.
pub fn check(
    request: Request<'_>,
    text: &mut dyn Write,
    json_out: &mut dyn Write,
) -> Result<bool, Fatal> {
    let shown = request.image.display();
    let io = |e: std::io::Error| Fatal::failure(format!("writing the report: {e}"));
    let options = TreeOptions {
        trust: request.trust,
        require_signed: false,
    };
    let (tree, report) =
        Tree::open_with(request.image, &options).map_err(|e| Fatal::failure(e.to_string()))?;
    for w in &report.warnings {
        log::warn!("{w}");
    }
    let chosen = choose(tree.images(), request.select, &shown.to_string())?;
    if chosen.is_empty() {
        writeln!(text, "{shown}: no images: nothing is signed").map_err(io)?;
        return Ok(false);
    }
    let oci = if request.json {
        Some(
            OciSif::open(request.image, OpenMode::ReadOnly)
                .map_err(|e| Fatal::failure(e.to_string()))?,
        )
    } else {
        None
    };
    let mut all_verified = true;
    let mut verified_json = Vec::new();
    for image in chosen {
        let mut tried = 0;
        let mut verified = 0;
        for (_, entry) in tree.cosign_entries() {
            if entry.target != image.digest {
                continue;
            }
            let Some(verdict) = tree.verdict(&entry.name) else {
                continue;
            };
            tried += 1;
            write!(
                text,
                "{}: {}: {}",
                image.name,
                entry.name,
                verdict.to_file_text()
            )
            .map_err(io)?;
            let Verdict::Verified { by, .. } = verdict else {
                continue;
            };
            verified += 1;
            if let Some(oci) = &oci {
                match oci.read_blob(&entry.layer.digest) {
                    Ok(payload) => {
                        verified_json.push(cosign_json(&payload, by, &entry.annotations()))
                    }
                    Err(e) => log::warn!("{shown}: cosign/{}: {e}", entry.name),
                }
            }
        }
        let summary = match (tried, verified) {
            (0, _) => "not verified: no signatures or attestations".to_string(),
            (n, 0) => format!("not verified: none of {n} entries verifies"),
            (n, v) => format!("verified by {v} of {n} entries"),
        };
        writeln!(text, "{}: {} ({})", image.name, summary, image.digest).map_err(io)?;
        all_verified &= verified > 0;
    }
    text.flush().map_err(io)?;
    if request.json {
        let out = serde_json::to_string(&Value::Array(verified_json))
            .expect("serializing JSON values to memory cannot fail");
        writeln!(json_out, "{out}").map_err(io)?;
        json_out.flush().map_err(io)?;
    }
    Ok(all_verified)
}

/// The images `--image` names: all of them without it.
fn choose<'t>(
    images: &'t [ImageTrust],
    select: Option<&str>,
    shown: &str,
) -> Result<Vec<&'t ImageTrust>, Fatal> {
    // Without --image, every image but those that are themselves signatures (a cosign 3
    // bundle's referrer manifest in the root index): nobody signs a signature.
    let Some(want) = select else {
        return Ok(images.iter().filter(|i| !i.holds_entries).collect());
    };
    let hex = want.strip_prefix("sha256:").unwrap_or(want);
    let by_digest = |i: &&ImageTrust| hex.len() >= 12 && i.digest.hex().starts_with(hex);
    let found: Vec<&ImageTrust> = match images.iter().find(|i| i.name == want) {
        Some(image) => vec![image],
        None => images.iter().filter(by_digest).collect(),
    };
    match found.len() {
        1 => Ok(found),
        0 => {
            let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
            Err(Fatal::usage(format!(
                "--image {want}: {shown} has no image of that name or digest (its images: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )))
        }
        n => Err(Fatal::usage(format!(
            "--image {want}: {n} images of {shown} have digests starting so; give more digits"
        ))),
    }
}

/// What `cosign verify --output json` prints for one verified entry: a simple-signing
/// payload with `optional.Subject` and `optional.Issuer` (keyless) and `optional.Bundle`
/// (the Rekor entry) added; an attestation or bundle as stored.
fn cosign_json(
    payload: &[u8],
    by: &Signer,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Value {
    let Ok(mut value) = serde_json::from_slice::<Value>(payload) else {
        return Value::String(String::from_utf8_lossy(payload).into_owned());
    };
    if value.get("critical").is_none() {
        return value;
    }
    if !value.get("optional").is_some_and(Value::is_object) {
        value["optional"] = Value::Object(Default::default());
    }
    let optional = &mut value["optional"];
    if let Signer::Certificate { subject, issuer } = by {
        optional["Subject"] = Value::String(subject.clone());
        optional["Issuer"] = Value::String(issuer.clone());
    }
    if let Some(bundle) = annotations
        .get(REKOR_BUNDLE_ANNOTATION)
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        optional["Bundle"] = bundle;
    }
    value
}
