//! Seed corpora, made at run time from the shared test data and the project's own
//! images (fuzz/README.md): nothing here is a copy kept in the project.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use sifmount::cosign::{self, EntryKind};
use sifmount::oci::{media_type, Index, OciSif};
use sifmount::sif::{
    fs_type, part_type, ChangeTime, CreateOptions, DataType, Digest, MemStorage, ObjectInput,
    OpenMode, SifImage,
};

use crate::drop_ops::{content, Content, Dir, Name, Script};
use crate::{demo, join_parts, testdata};

/// Seed files larger than this are left out: libFuzzer's mutations of a 100 KB file are
/// mostly of padding, and the cap keeps `-max_len` (and each execution) small.
const MAX_SEED: u64 = 128 << 10;

/// Writes the seeds of `target` into `dir` (created if needed); returns how many distinct
/// ones there are.
pub fn write(target: &str, dir: &Path) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let seeds = match target {
        "sif_open" => sif_open(),
        "oci_parse" => oci_parse(),
        "cosign_discover" => cosign_discover(),
        "drop_protocol" => drop_protocol(),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no seeds for target {other}"),
            ))
        }
    };
    // Named by content, as libFuzzer names corpus files, so duplicates collapse.
    let mut names = BTreeSet::new();
    for s in &seeds {
        let name = Digest::of(s).hex();
        std::fs::write(dir.join(&name[..40]), s)?;
        names.insert(name);
    }
    Ok(names.len())
}

/// Every file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn small_files() -> Vec<(PathBuf, Vec<u8>)> {
    let Some(td) = testdata() else {
        eprintln!("warning: no test data (set SIFMOUNT_TESTDATA): only generated seeds");
        return Vec::new();
    };
    files_under(&td)
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_SEED))
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

fn is_sif(b: &[u8]) -> bool {
    b.len() >= 128 && &b[32..42] == b"SIF_MAGIC\0"
}

/// The upstream OCI-SIFs, opened.
fn upstream_oci_sifs() -> Vec<OciSif> {
    small_files()
        .into_iter()
        .filter(|(_, b)| is_sif(b))
        .filter_map(|(_, b)| {
            let sif =
                SifImage::from_storage(Box::new(MemStorage::new(b)), OpenMode::ReadOnly).ok()?;
            OciSif::from_sif(sif).ok()
        })
        .collect()
}

/// Images the project makes: the demo OCI-SIF, a signed one, a native SIF with a
/// partition, an empty one.
fn generated_images() -> Vec<Vec<u8>> {
    let d = demo();
    let mut out = vec![d.image.clone()];
    let native = |objects: Vec<ObjectInput<'_>>, capacity| {
        let storage = std::sync::Arc::new(MemStorage::default());
        let opts = CreateOptions {
            capacity,
            ..CreateOptions::deterministic()
        };
        SifImage::create(Box::new(storage.clone()), &opts, objects)
            .expect("a small image in memory can be written");
        storage.to_vec()
    };
    out.push(native(Vec::new(), 4));
    let part = ObjectInput::partition(
        &b"hsqs-not-really"[..],
        fs_type::SQUASHFS,
        part_type::PRIM_SYS,
        "amd64",
    )
    .expect("a valid partition");
    out.push(native(
        vec![
            part,
            ObjectInput::new(DataType::Deffile, &b"Bootstrap: scratch\n"[..]).name("def"),
            ObjectInput::new(DataType::Generic, &b"x"[..]).group(0),
        ],
        6,
    ));
    // The demo with a signature attached by the project's attach.
    let storage = std::sync::Arc::new(MemStorage::new(d.image.clone()));
    let sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        .expect("the demo opens");
    let mut oci = OciSif::from_sif(sif).expect("the demo is an OCI-SIF");
    let files = cosign::DropFiles {
        payload: Some(crate::drop_ops::payload()),
        signature: Some(crate::drop_ops::SIGNATURE.to_vec()),
        ..Default::default()
    };
    if let Ok(Some(a)) = cosign::prepare(&oci, &files) {
        if cosign::attach(&mut oci, &a).is_ok() {
            drop(oci);
            out.push(storage.to_vec());
        }
    }
    // An image with a grown table (written after the objects, at a new offset).
    let storage = std::sync::Arc::new(MemStorage::new(d.image.clone()));
    let mut sif = SifImage::from_storage(Box::new(storage.clone()), OpenMode::ReadWrite)
        .expect("the demo opens");
    if sif
        .ensure_free_slots(sif.free_slots() + 4, ChangeTime::Zero)
        .is_ok()
    {
        drop(sif);
        out.push(storage.to_vec());
    }
    out
}

fn sif_open() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = small_files()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| is_sif(b))
        .collect();
    out.extend(generated_images());
    out
}

/// Every JSON document of the test data and the generated images: layout index.json files
/// and blobs, and the root indexes and JSON blobs inside every OCI-SIF.
fn json_documents() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, b) in small_files() {
        if !is_sif(&b) && serde_json::from_slice::<serde::de::IgnoredAny>(&b).is_ok() {
            out.push(b);
        }
    }
    let mut images = upstream_oci_sifs();
    for b in generated_images() {
        if let Ok(sif) = SifImage::from_storage(Box::new(MemStorage::new(b)), OpenMode::ReadOnly) {
            if let Ok(oci) = OciSif::from_sif(sif) {
                images.push(oci);
            }
        }
    }
    for oci in &images {
        if let Ok(b) = oci.root_index_bytes() {
            out.push(b);
        }
        let digests: Vec<Digest> = oci.blobs().map(|(d, _)| d).collect();
        for d in digests {
            if let Ok(b) = oci.read_blob(&d) {
                if b.len() as u64 <= MAX_SEED
                    && serde_json::from_slice::<serde::de::IgnoredAny>(&b).is_ok()
                {
                    out.push(b);
                }
            }
        }
    }
    out
}

fn oci_parse() -> Vec<Vec<u8>> {
    let mut out = json_documents();
    out.push(demo().root_index.clone());
    out.push(demo().manifest.clone());
    out
}

/// Per image: its `.sig` manifest, `.att` manifest, a referrer manifest, nothing as the
/// stray, then up to four layer payloads; the part layout `cosign_discover` reads.
fn cosign_discover() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut images = upstream_oci_sifs();
    for b in generated_images() {
        if let Ok(sif) = SifImage::from_storage(Box::new(MemStorage::new(b)), OpenMode::ReadOnly) {
            if let Ok(oci) = OciSif::from_sif(sif) {
                images.push(oci);
            }
        }
    }
    for oci in &images {
        let found = cosign::discover(oci);
        let manifest_of = |kind: EntryKind| {
            found
                .entries
                .iter()
                .find(|e| e.kind == kind)
                .and_then(|e| oci.read_blob(&e.manifest).ok())
                .unwrap_or_default()
        };
        let sig = manifest_of(EntryKind::Signature);
        let att = manifest_of(EntryKind::Attestation);
        let referrer = manifest_of(EntryKind::Referrer);
        if sig.is_empty() && att.is_empty() && referrer.is_empty() {
            continue;
        }
        let payloads: Vec<Vec<u8>> = found
            .entries
            .iter()
            .filter_map(|e| oci.read_blob(&e.layer.digest).ok())
            .take(4)
            .collect();
        let mut parts: Vec<&[u8]> = vec![&sig, &att, &referrer, b""];
        parts.extend(payloads.iter().map(Vec::as_slice));
        out.push(join_parts(&parts));
        // The same signature image as the referrer too, and its first payload dropped.
        if let Some(p) = payloads.first() {
            out.push(join_parts(&[&sig, &att, &sig, &referrer, p, p]));
        }
    }
    // Layout directories of the cosign test data: the manifests their index lists.
    if let Some(td) = testdata() {
        for index_path in files_under(&td.join("cosign"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "index.json"))
        {
            let Ok(index) = std::fs::read(&index_path).map(|b| Index::parse(&b)) else {
                continue;
            };
            let Ok(index) = index else { continue };
            let blob = |d: &Digest| {
                std::fs::read(
                    index_path
                        .with_file_name("blobs")
                        .join("sha256")
                        .join(d.hex()),
                )
                .unwrap_or_default()
            };
            let docs: Vec<Vec<u8>> = index
                .entries()
                .iter()
                .filter(|e| media_type::is_manifest(&e.media_type))
                .map(|e| blob(&e.digest))
                .take(4)
                .collect();
            if docs.is_empty() {
                continue;
            }
            let get = |i: usize| docs.get(i).cloned().unwrap_or_default();
            let (a, b, c, d) = (get(0), get(1), get(2), get(3));
            out.push(join_parts(&[&a, &b, &c, &d]));
            out.push(join_parts(&[&b, &a, &d, &c]));
        }
        // Signatures and bundles as they come from other tools, as dropped payloads.
        for (p, b) in small_files() {
            let s = p.to_string_lossy();
            if s.contains("/cosign/") && !is_sif(&b) && !s.ends_with(".key") {
                out.push(join_parts(&[b"", b"", b"", b"", b"", &b]));
            }
        }
    }
    let d = demo();
    out.push(join_parts(&[&d.manifest, &d.manifest, &d.manifest]));
    out
}

fn drop_protocol() -> Vec<Vec<u8>> {
    use content as c;
    let k = Content::Known;
    let mut out = Vec::new();
    let mut s = Script::default();
    // cp payload p; cp sig p.sig: a commit.
    s.cp(Dir::Cosign, Name::Known(0), k(c::PAYLOAD))
        .cp(Dir::Cosign, Name::Known(1), k(c::SIGNATURE_NEWLINE))
        .walk();
    out.push(s.0);
    let mut s = Script::default();
    // Signature first, then the payload; then a DSSE attestation.
    s.cp(Dir::Cosign, Name::Known(9), k(c::SIGNATURE))
        .cp(Dir::Cosign, Name::Known(8), k(c::PAYLOAD_2))
        .cp(
            Dir::Cosign,
            Name::Inline(b"att.json".to_vec()),
            k(c::ENVELOPE),
        );
    out.push(s.0);
    let mut s = Script::default();
    // mkdir d; cp payload and annotations into it.
    s.mkdir(Dir::Cosign, Name::Known(10))
        .cp(Dir::InCosign(0), Name::Known(11), k(c::PAYLOAD))
        .cp(Dir::InCosign(0), Name::Known(17), k(c::ANNOTATIONS))
        .cp(Dir::InCosign(0), Name::Known(13), k(c::CERTIFICATE))
        .walk();
    out.push(s.0);
    let mut s = Script::default();
    // rm -r of the committed entry, then cp -r of it back from nowhere.
    s.rm_r(Dir::Cosign, Name::Listed(0)).walk();
    out.push(s.0);
    let mut s = Script::default();
    // cp -r of the committed entry into a new directory (a no-op commit).
    s.cp_r(Dir::InCosign(0), Name::Inline(b"copy".to_vec()))
        .walk();
    out.push(s.0);
    let mut s = Script::default();
    // Open files kept open across a commit; a bad signature; an unlink of the error file.
    s.create(Dir::Cosign, Name::Known(0))
        .write(0, k(c::PAYLOAD_2))
        .create(Dir::Cosign, Name::Known(1))
        .write(1, k(c::NOT_BASE64))
        .flush(1)
        .flush(0)
        .unlink(Dir::Cosign, Name::Known(7))
        .open(Dir::Cosign, Name::Known(1), true)
        .write(2, k(c::SIGNATURE))
        .flush(2)
        .release(2)
        .release(1)
        .release(0)
        .walk();
    out.push(s.0);
    let mut s = Script::default();
    // Amending a committed entry: a certificate added to its directory.
    s.cp(Dir::InCosign(0), Name::Known(13), k(c::CERTIFICATE))
        .cp(Dir::InCosign(0), Name::Known(17), k(c::ANNOTATIONS))
        .unlink(Dir::InCosign(0), Name::Listed(0))
        .rmdir(Dir::Cosign, Name::Listed(0));
    out.push(s.0);
    // Upstream signatures and payloads (for other images: refused, with reasons).
    for oci in upstream_oci_sifs() {
        let found = cosign::discover(&oci);
        for e in found.entries.iter().take(2) {
            let Ok(payload) = oci.read_blob(&e.layer.digest) else {
                continue;
            };
            let sig = e
                .annotations()
                .get(cosign::SIGNATURE_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let mut s = Script::default();
            s.cp(
                Dir::Cosign,
                Name::Known(1),
                Content::Inline(sig.into_bytes()),
            )
            .cp(Dir::Cosign, Name::Known(0), Content::Inline(payload));
            out.push(s.0);
        }
    }
    out
}
