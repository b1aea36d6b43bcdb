//! Makes the data of `scripts/bench.sh` with sifmount's own writer: OCI-SIF files and,
//! beside them, the same bytes as plain files for building squashfs images to compare
//! against. Every output is deterministic: the same arguments give the same bytes.
//!
//!     cargo build --release --example bench-data
//!     bench-data big OUT.oci.sif --size 1G [--raw FILE] [--seed N] [--spare 8]
//!     bench-data many OUT.oci.sif --blobs 10000 [--raw-dir DIR] [--seed N]
//!     bench-data signed OUT.oci.sif --signatures 1000 [--key-out PUB.pem] [--seed N]
//!     bench-data drops DIR --target sha256:HEX --count 200 [--seed N]
//!     bench-data keyless OUT.oci.sif --fixture DIR --signatures 1000
//!
//! * `big`: one linux/amd64 image whose single layer is SIZE pseudo-random bytes
//!   (suffixes K, M, G, binary), generated as they are hashed and written, never held in
//!   memory; 8 spare descriptors, as SingularityCE leaves. `--raw FILE` also writes the
//!   layer's bytes to FILE, so that a squashfs can hold exactly the same bytes.
//! * `many`: one image with BLOBS blobs in all: BLOBS − 2 small pseudo-random layers
//!   (512 B to 8 KiB, each different), its config and its manifest. The mount shows each
//!   under `/blobs/sha256/`. `--raw-dir DIR` writes the same BLOBS files as
//!   `DIR/blobs/sha256/<hex>`, the paths they have in the mount.
//! * `signed`: a small image (one 4 KiB layer) with SIGNATURES cosign signatures stored as
//!   SingularityCE's `sign --cosign` stores them: one `_cosign:sha256-<hex>.sig` image
//!   with one simple-signing layer per signature, each payload different, each signed
//!   with a fixed ECDSA P-256 key (so the signatures are real and reproducible). At most
//!   1,000, the most layers cosign reads. `--key-out PUB.pem` writes the public key, for
//!   `sifmount --key`.
//! * `drops`: COUNT signature pairs to copy into a mount's `cosign/` directory, as
//!   `scripts/bench.sh` does to time attaches: `DIR/pN` (a simple-signing payload naming
//!   TARGET, the image's manifest digest) and `DIR/pN.sig` (its base64 signature), for N
//!   from 1 to COUNT.
//! * `keyless`: the real keyless signature of a containers/image `dir:` fixture
//!   (`DIR/manifest.json`, `DIR/signature-1`: Fulcio certificate, chain and Rekor
//!   entry), SIGNATURES times as the layers of one `.sig` image named after the fixture's
//!   manifest: what `sifmount --certificate-identity` verifies SIGNATURES times at mount.
//!   The manifest itself is not in the image (the fixture lacks its config and layers).
//!
//! Each subcommand but `drops` prints `key=value` lines about what it wrote, for scripts:
//! `file_size`, `objects`, `manifest_digest`, and for `big` the layer's `layer_digest`,
//! `layer_offset` and `layer_size` in the SIF (so that `dd` can read the same byte range
//! straight from the file), for `many` the `blobs` count, for `signed` the `signatures`
//! count.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Parser, Subcommand};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use sha2::{Digest as _, Sha256};
use sifmount::cosign::{
    cosign_ref_name, EntryKind, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};
use sifmount::oci::layered_image::{config_for_layers, manifest_for_layers, MediaTypes};
use sifmount::oci::{
    media_type, write_oci_sif_at_path, BlobSource, Descriptor, EntryStyle, Index, Manifest,
    MemBlobs, OciSif, Sources,
};
use sifmount::sif::Digest;

/// Make the benchmark's data.
#[derive(Debug, Parser)]
#[command(name = "bench-data")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// An OCI-SIF whose one layer is SIZE pseudo-random bytes.
    Big {
        /// Where to write the OCI-SIF (replaced if it exists).
        out: PathBuf,
        /// The layer's size: bytes, or with a K, M or G suffix (powers of 1024).
        #[arg(long, value_parser = parse_size, default_value = "1G")]
        size: u64,
        /// Also write the layer's bytes to this file.
        #[arg(long, value_name = "FILE")]
        raw: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Free descriptors to leave for signatures.
        #[arg(long, default_value_t = 8)]
        spare: u32,
    },
    /// An OCI-SIF holding BLOBS small blobs (one image of BLOBS − 2 layers).
    Many {
        out: PathBuf,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(3..))]
        blobs: u32,
        /// Also write every blob to DIR/blobs/sha256/<hex>.
        #[arg(long, value_name = "DIR")]
        raw_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        seed: u64,
        #[arg(long, default_value_t = 8)]
        spare: u32,
    },
    /// A small image with SIGNATURES cosign signatures in one `.sig` image.
    Signed {
        out: PathBuf,
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
        signatures: u32,
        #[arg(long, default_value_t = 3)]
        seed: u64,
        #[arg(long, default_value_t = 8)]
        spare: u32,
        /// Also write the public key (PEM) that verifies the signatures, for `--key`.
        #[arg(long, value_name = "FILE")]
        key_out: Option<PathBuf>,
    },
    /// A real keyless signature, SIGNATURES times, about a fixture's manifest.
    Keyless {
        out: PathBuf,
        /// A containers/image `dir:` fixture with `manifest.json` and `signature-1`.
        #[arg(long, value_name = "DIR")]
        fixture: PathBuf,
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
        signatures: u32,
    },
    /// Payloads and signatures to attach: DIR/pN and DIR/pN.sig.
    Drops {
        dir: PathBuf,
        /// The manifest digest the payloads name.
        #[arg(long)]
        target: Digest,
        #[arg(long, default_value_t = 200)]
        count: u32,
        #[arg(long, default_value_t = 4)]
        seed: u64,
    },
}

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.what {
        What::Big {
            out,
            size,
            raw,
            seed,
            spare,
        } => big(&out, size, raw.as_deref(), seed, spare),
        What::Many {
            out,
            blobs,
            raw_dir,
            seed,
            spare,
        } => many(&out, blobs, raw_dir.as_deref(), seed, spare),
        What::Signed {
            out,
            signatures,
            seed,
            spare,
            key_out,
        } => signed(&out, signatures, seed, spare, key_out.as_deref()),
        What::Drops {
            dir,
            target,
            count,
            seed,
        } => drops(&dir, &target, count, seed),
        What::Keyless {
            out,
            fixture,
            signatures,
        } => keyless(&out, &fixture, signatures),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-data: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `123`, `64K`, `1M`, `1G` (also `KiB`, `MiB`, `GiB`): a byte count.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        _ => return Err(format!("unknown size unit in {s:?} (use K, M or G)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

// --- Pseudo-random bytes ------------------------------------------------------------------

/// SplitMix64: a fast, well-mixed sequence of 64-bit words from any seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with the next bytes of the sequence (whole words, the last one cut).
    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let w = self.next().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&w[..n]);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

/// Bytes made in blocks of this size; a stream's content does not depend on how it is read.
const BLOCK: usize = 64 << 10;

/// `size` pseudo-random bytes from `seed`, made a block at a time as they are read.
struct Stream {
    rng: SplitMix,
    left: u64,
    block: Box<[u8; BLOCK]>,
    /// Where the unread part of `block` starts (`BLOCK` when it is used up).
    at: usize,
}

impl Stream {
    fn new(seed: u64, size: u64) -> Stream {
        Stream {
            rng: SplitMix(seed),
            left: size,
            block: Box::new([0; BLOCK]),
            at: BLOCK,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.at == BLOCK {
            self.rng.fill(&mut self.block[..]);
            self.at = 0;
        }
        let n = buf
            .len()
            .min(BLOCK - self.at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A blob source with one streamed blob, made again each time it is opened.
struct StreamBlob {
    seed: u64,
    size: u64,
    digest: Digest,
}

impl BlobSource for StreamBlob {
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        if *digest != self.digest {
            return Ok(None);
        }
        Ok(Some((
            self.size,
            Box::new(Stream::new(self.seed, self.size)) as Box<dyn Read>,
        )))
    }
}

/// Reads `stream` to its end, hashing it and copying it to `copy` if given.
fn hash_stream(mut stream: impl Read, mut copy: Option<&mut dyn Write>) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(w) = copy.as_mut() {
            w.write_all(&buf[..n])?;
        }
    }
    Ok(Digest::from_bytes(hasher.finalize().into()))
}

// --- Images ---------------------------------------------------------------------------

const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A linux/amd64 image of `layers`: its config and manifest, added to `docs`; returns the
/// manifest's bytes and digest.
fn image_of(layers: &[(Digest, u64)], docs: &mut MemBlobs) -> (Vec<u8>, Digest) {
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "created": "2024-01-01T00:00:00Z",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
    }))
    .expect("a JSON value serializes");
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        config: Descriptor::of(media_type::OCI_CONFIG, &config),
        layers: layers
            .iter()
            .map(|&(d, size)| Descriptor::of_digest(LAYER_TYPE, d, size))
            .collect(),
        annotations: None,
        subject: None,
        artifact_type: None,
    }
    .to_go_json();
    docs.insert(config);
    let digest = docs.insert(manifest.clone());
    (manifest, digest)
}

/// The root index listing one image, without a reference name (as SingularityCE).
fn index_of(manifest: &[u8]) -> Index {
    let mut index = Index::empty();
    index.append(Descriptor::of(media_type::OCI_MANIFEST, manifest), None);
    index
}

fn report(out: &Path, image: &OciSif, manifest: &Digest) -> Result<(), Error> {
    println!("image={}", out.display());
    println!("file_size={}", image.sif().file_len()?);
    println!("objects={}", image.sif().used_count());
    println!("manifest_digest={manifest}");
    Ok(())
}

fn big(out: &Path, size: u64, raw: Option<&Path>, seed: u64, spare: u32) -> Result<(), Error> {
    let digest = match raw {
        Some(path) => {
            let mut file = io::BufWriter::with_capacity(
                1 << 20,
                File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            );
            let d = hash_stream(Stream::new(seed, size), Some(&mut file))?;
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            d
        }
        None => hash_stream(Stream::new(seed, size), None)?,
    };
    let layer = StreamBlob { seed, size, digest };
    let mut docs = MemBlobs::new();
    let (manifest, manifest_digest) = image_of(&[(digest, size)], &mut docs);
    let sources = Sources(vec![&docs, &layer]);
    let image = write_oci_sif_at_path(
        out,
        &index_of(&manifest).to_go_json(),
        &sources,
        spare.into(),
    )?;
    let d = image
        .blob(&digest)
        .ok_or("the written image has no layer blob")?;
    report(out, &image, &manifest_digest)?;
    println!("layer_digest={digest}");
    println!("layer_offset={}", d.offset);
    println!("layer_size={}", d.size);
    Ok(())
}

fn many(
    out: &Path,
    blobs: u32,
    raw_dir: Option<&Path>,
    seed: u64,
    spare: u32,
) -> Result<(), Error> {
    let mut rng = SplitMix(seed);
    let mut docs = MemBlobs::new();
    let mut layers = Vec::new();
    for _ in 0..blobs - 2 {
        let size = 512 + (rng.next() % (8 * 1024 - 512 + 1)) as usize;
        let bytes = rng.bytes(size);
        layers.push((docs.insert(bytes), size as u64));
    }
    let (manifest, manifest_digest) = image_of(&layers, &mut docs);
    if docs.len() != blobs as usize {
        return Err(format!("{} distinct blobs made, not {blobs}", docs.len()).into());
    }
    if let Some(dir) = raw_dir {
        let blob_dir = dir.join("blobs/sha256");
        if blob_dir.exists() {
            fs::remove_dir_all(&blob_dir)?;
        }
        fs::create_dir_all(&blob_dir).map_err(|e| format!("{}: {e}", blob_dir.display()))?;
        let mut all: Vec<Digest> = layers.iter().map(|(d, _)| *d).collect();
        all.push(Manifest::parse(&manifest)?.config.digest);
        all.push(manifest_digest);
        for d in &all {
            let bytes = docs.read_blob(d)?.expect("every blob was made here");
            fs::write(blob_dir.join(d.hex()), bytes)?;
        }
    }
    let image = write_oci_sif_at_path(out, &index_of(&manifest).to_go_json(), &docs, spare.into())?;
    report(out, &image, &manifest_digest)?;
    println!("blobs={}", image.blobs().count());
    Ok(())
}

/// The fixed signing key of a seed (a valid P-256 scalar for any seed in practice).
fn signing_key(seed: u64) -> Result<SigningKey, Error> {
    let mut rng = SplitMix(seed ^ 0x5349_474E);
    SigningKey::from_slice(&rng.bytes(32))
        .map_err(|e| format!("cannot make the signing key: {e}").into())
}

/// A cosign simple-signing payload for `target`, made distinct by `n`.
fn payload(target: &Digest, n: u32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": ""},
            "image": {"docker-manifest-digest": target.to_string()},
            "type": "cosign container image signature",
        },
        "optional": {"creator": "sifmount bench-data", "n": n},
    }))
    .expect("a JSON value serializes")
}

/// The base64 of the DER ECDSA signature of `payload`, as cosign writes it.
fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let sig: Signature = key.sign(payload);
    base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
}

fn signed(
    out: &Path,
    signatures: u32,
    seed: u64,
    spare: u32,
    key_out: Option<&Path>,
) -> Result<(), Error> {
    let mut rng = SplitMix(seed);
    let mut docs = MemBlobs::new();
    let layer = rng.bytes(4096);
    let layer_digest = docs.insert(layer);
    let (manifest, target) = image_of(&[(layer_digest, 4096)], &mut docs);

    let key = signing_key(seed)?;
    let mut layers = Vec::new();
    for n in 1..=signatures {
        let p = payload(&target, n);
        let mut d = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &p);
        d.set_annotation(SIGNATURE_ANNOTATION, &sign(&key, &p));
        docs.insert(p);
        layers.push(d);
    }
    let mut index = index_of(&manifest);
    add_signature_image(&mut index, &mut docs, &target, layers);
    let image = write_oci_sif_at_path(out, &index.to_go_json(), &docs, spare.into())?;
    if let Some(path) = key_out {
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| format!("cannot encode the public key: {e}"))?;
        fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    report(out, &image, &target)?;
    println!("signatures={signatures}");
    Ok(())
}

/// The `_cosign:sha256-<target>.sig` image of `layers`, its blobs into `docs` and its
/// entry into `index`, as SingularityCE 4.5 writes them.
fn add_signature_image(
    index: &mut Index,
    docs: &mut MemBlobs,
    target: &Digest,
    layers: Vec<Descriptor>,
) {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.digest).collect();
    let config = config_for_layers(&diff_ids);
    let sig_manifest = manifest_for_layers(&config, layers, MediaTypes::Oci);
    let sig_manifest_bytes = sig_manifest.to_go_json();
    docs.insert(config);
    docs.insert(sig_manifest_bytes.clone());
    let name = cosign_ref_name(EntryKind::Signature, target).expect("signatures have a tag");
    index.replace_named(
        &name,
        &sig_manifest_bytes,
        &sig_manifest,
        EntryStyle::Singularity45,
    );
}

fn keyless(out: &Path, fixture: &Path, signatures: u32) -> Result<(), Error> {
    let read = |name: &str| {
        let path = fixture.join(name);
        fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let manifest = read("manifest.json")?;
    let target = Digest::of(&manifest);
    let signature = read("signature-1")?;
    let json = signature
        .strip_prefix(b"\0sigstore-json\n")
        .ok_or("signature-1 is not a containers/image sigstore signature")?;
    let v: serde_json::Value = serde_json::from_slice(json)?;
    let text = |key: &str| {
        v[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("signature-1: no {key}"))
    };
    let payload = base64::engine::general_purpose::STANDARD
        .decode(text("payload")?)
        .map_err(|e| format!("signature-1: payload: {e}"))?;
    let mut layer = Descriptor::of(&text("mimeType")?, &payload);
    for (k, value) in v["annotations"].as_object().into_iter().flatten() {
        layer.set_annotation(k, value.as_str().ok_or("annotation values are strings")?);
    }
    let mut docs = MemBlobs::new();
    docs.insert(payload);
    let layers = vec![layer; signatures as usize];
    // The signed manifest itself is left out: its config and layers are not in the
    // fixture, and the writer refuses an image with missing blobs.
    let mut index = Index::empty();
    add_signature_image(&mut index, &mut docs, &target, layers);
    let image = write_oci_sif_at_path(out, &index.to_go_json(), &docs, 8)?;
    report(out, &image, &target)?;
    println!("signatures={signatures}");
    Ok(())
}

fn drops(dir: &Path, target: &Digest, count: u32, seed: u64) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key = signing_key(seed)?;
    for n in 1..=count {
        let p = payload(target, n);
        let sig = sign(&key, &p);
        fs::write(dir.join(format!("p{n}")), &p)?;
        fs::write(dir.join(format!("p{n}.sig")), format!("{sig}\n"))?;
    }
    Ok(())
}
