//! OCI-SIF images written with the library for the real-mount tests: a small demo image
//! like `examples/make-oci-sif.rs` writes, and images with a large generated layer.
#![allow(dead_code)]

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use sifmount::oci::{
    media_type, write_oci_sif_at_path, BlobSource, Descriptor, Index, Manifest, MemBlobs, Sources,
};
use sifmount::sif::Digest;

/// What was written: the digests a reader of the image must report.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
    /// The size of each layer.
    pub layer_sizes: Vec<u64>,
}

/// Writes an OCI-SIF at `out` holding one linux/amd64 image with `layers` (uncompressed
/// tar media type), whose bytes come from `source`, and `spare` free descriptors. Like
/// SingularityCE, the root-index entry has no reference name.
pub fn write_image(
    out: &Path,
    layers: &[(Digest, u64)],
    source: &dyn BlobSource,
    spare: i64,
) -> Written {
    let mut docs = MemBlobs::new();
    let (config, manifest) = config_and_manifest(layers, "PATH=/usr/bin:/bin");
    let config_digest = docs.insert(config);
    let mut index = Index::empty();
    index.append(Descriptor::of(media_type::OCI_MANIFEST, &manifest), None);
    let manifest_digest = docs.insert(manifest);
    let sources = Sources(vec![&docs, source]);
    write_oci_sif_at_path(out, &index.to_go_json(), &sources, spare)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    Written {
        manifest: manifest_digest,
        config: config_digest,
        layers: layers.iter().map(|(d, _)| *d).collect(),
        layer_sizes: layers.iter().map(|(_, s)| *s).collect(),
    }
}

/// The config (linux/amd64, with `env` as its only environment variable) and the
/// manifest, as Go writes them, of an image of `layers` (uncompressed tar media type).
pub fn config_and_manifest(layers: &[(Digest, u64)], env: &str) -> (Vec<u8>, Vec<u8>) {
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "created": "2024-01-01T00:00:00Z",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Env": [env]},
    }))
    .expect("serialize a config");
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|&(d, size)| Descriptor::of_digest("application/vnd.oci.image.layer.v1.tar", d, size))
        .collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        config: Descriptor::of(media_type::OCI_CONFIG, &config),
        layers: layer_descs,
        annotations: None,
        subject: None,
        artifact_type: None,
    }
    .to_go_json();
    (config, manifest)
}

/// The demo image of `examples/make-oci-sif.rs`, in kind: one small uncompressed tar
/// layer (`hello.txt`, `etc/os-release`), config, manifest, 8 spare descriptors.
pub fn write_demo_image(out: &Path) -> Written {
    write_demo_image_with_spare(out, 8)
}

/// A demo image ([`write_demo_image_with_spare`]) at `dir/name`: its path and the
/// manifest digest its signatures name.
pub fn demo_image_at(dir: &Path, name: &str, spare: i64) -> (PathBuf, Digest) {
    let path = dir.join(name);
    let written = write_demo_image_with_spare(&path, spare);
    (path, written.manifest)
}

/// [`write_demo_image`] with `spare` free descriptors.
pub fn write_demo_image_with_spare(out: &Path, spare: i64) -> Written {
    let mut tar = Vec::new();
    tar_entry(&mut tar, "etc/", b"", b'5', 0o755);
    tar_entry(
        &mut tar,
        "etc/os-release",
        b"NAME=\"sifmount test\"\nID=sifmount-test\n",
        b'0',
        0o644,
    );
    tar_entry(
        &mut tar,
        "hello.txt",
        b"Hello from a real-mount test.\n",
        b'0',
        0o644,
    );
    tar.resize(tar.len() + 1024, 0);
    let mut blobs = MemBlobs::new();
    let size = tar.len() as u64;
    let digest = blobs.insert(tar);
    write_image(out, &[(digest, size)], &blobs, spare)
}

/// Appends one ustar entry (root-owned, mtime 2024-01-01) and its padded data.
fn tar_entry(tar: &mut Vec<u8>, name: &str, data: &[u8], kind: u8, mode: u32) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0width$o}", width = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, data.len() as u64);
    octal(&mut h, 136, 12, 1_704_067_200);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&h);
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// `size` pseudo-random bytes from `seed` (xorshift64*), generated as they are read, so
/// that a large layer never sits in memory.
pub struct Generated {
    state: u64,
    left: u64,
    /// Bytes of the current word not handed out yet.
    word: [u8; 8],
    word_left: usize,
}

impl Generated {
    pub fn new(seed: u64, size: u64) -> Generated {
        Generated {
            state: seed | 1,
            left: size,
            word: [0; 8],
            word_left: 0,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        let mut out = &mut buf[..n];
        // The rest of a word a previous read stopped in.
        let take = self.word_left.min(out.len());
        out[..take].copy_from_slice(&self.word[8 - self.word_left..8 - self.word_left + take]);
        self.word_left -= take;
        out = &mut out[take..];
        let mut words = out.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_word());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            self.word = self.next_word();
            let len = rest.len();
            rest.copy_from_slice(&self.word[..len]);
            self.word_left = 8 - len;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A blob source holding one generated blob.
pub struct GeneratedBlob {
    pub seed: u64,
    pub size: u64,
    pub digest: Digest,
}

impl GeneratedBlob {
    /// Hashes the generated bytes once to learn their digest.
    pub fn new(seed: u64, size: u64) -> GeneratedBlob {
        let mut hasher = Sha256::new();
        let mut r = Generated::new(seed, size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).expect("generated bytes never fail");
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        GeneratedBlob {
            seed,
            size,
            digest: Digest::from_bytes(hasher.finalize().into()),
        }
    }
}

impl BlobSource for GeneratedBlob {
    fn open_blob(&self, digest: &Digest) -> io::Result<Option<(u64, Box<dyn Read + '_>)>> {
        Ok((*digest == self.digest).then(|| {
            (
                self.size,
                Box::new(Generated::new(self.seed, self.size)) as Box<dyn Read>,
            )
        }))
    }
}
