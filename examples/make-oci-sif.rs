//! Makes example OCI-SIF files with sifmount's own writer.
//!
//!     cargo run --example make-oci-sif -- demo.oci.sif
//!     cargo run --example make-oci-sif -- --from-layout ./layout out.oci.sif
//!
//! Without `--from-layout` it writes a small demo image, byte for byte the same on every
//! run: one uncompressed tar layer (`/hello.txt`, `/etc/os-release`), an OCI image config
//! (linux/amd64), an OCI manifest, and a root index with that one image. As SingularityCE
//! does, the image's root-index entry has no `org.opencontainers.image.ref.name`, and the
//! file has 8 spare descriptors for signatures added later.
//!
//! The demo layer is a tar, not squashfs: fine for oci-tools, skopeo and sifmount, but
//! `singularity run` accepts only squashfs layers (docs/FORMAT.md, Multi-layer images and SingularityCE's conventions).
//!
//! With `--from-layout DIR` it converts any OCI image layout directory as oci-tools'
//! `Write` does: the root index is `DIR/index.json` stored verbatim, the blobs come from
//! `DIR/blobs/sha256/`. Unlike oci-tools, it also keeps the OCI 1.1 referrers that only
//! the blobs hold (manifests with a `subject` in the layout, as `cosign save` leaves them
//! without an `index.json` entry), after everything the root index lists, so that their
//! signatures and attestations survive the conversion.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sifmount::oci::gojson::{write_str, GoObject};
use sifmount::oci::{
    media_type, write_oci_sif_at_path, write_oci_sif_at_path_with, Descriptor, Index, LayoutDir,
    Manifest, MemBlobs,
};
use sifmount::sif::Digest;

/// Make an example OCI-SIF file.
#[derive(Debug, Parser)]
#[command(name = "make-oci-sif")]
struct Args {
    /// Where to write the OCI-SIF (replaced if it exists).
    #[arg(value_name = "OUT")]
    out: PathBuf,

    /// Convert this OCI image layout directory instead of writing the demo image.
    #[arg(long, value_name = "DIR")]
    from_layout: Option<PathBuf>,

    /// Free descriptors to leave for later additions (SingularityCE ≥ 4.2 leaves 8).
    #[arg(long, value_name = "N", default_value_t = 8)]
    spare: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make-oci-sif: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let image = match &args.from_layout {
        Some(dir) => {
            let layout = LayoutDir::new(dir);
            let index = layout.index_bytes().map_err(|e| {
                format!(
                    "{}: cannot read: {e}",
                    layout.path().join("index.json").display()
                )
            })?;
            let referrers = layout.referrers().map_err(|e| {
                format!(
                    "{}: cannot list the blobs: {e}",
                    layout.path().join("blobs/sha256").display()
                )
            })?;
            write_oci_sif_at_path_with(
                &args.out,
                &index,
                &referrers,
                &layout,
                i64::from(args.spare),
            )?
        }
        None => {
            let (index, blobs) = demo_image();
            write_oci_sif_at_path(&args.out, &index, &blobs, i64::from(args.spare))?
        }
    };
    let size = image.sif().file_len()?;
    let root = image.root_index_descriptor().describe_extra();
    println!(
        "{}: {size} bytes, {} objects, root index {root}",
        args.out.display(),
        image.sif().used_count()
    );
    Ok(())
}

/// 2024-01-01T00:00:00Z: every time in the demo image, so that it is reproducible.
const MTIME: u64 = 1_704_067_200;
const CREATED: &str = "2024-01-01T00:00:00Z";

/// The demo image's root index bytes and its blobs.
fn demo_image() -> (Vec<u8>, MemBlobs) {
    let mut blobs = MemBlobs::new();

    let layer = demo_layer();
    let diff_id = Digest::of(&layer);
    let layer_desc = Descriptor::of("application/vnd.oci.image.layer.v1.tar", &layer);
    blobs.insert(layer);

    let config = demo_config(&diff_id);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        config: Descriptor::of(media_type::OCI_CONFIG, &config),
        layers: vec![layer_desc],
        annotations: None,
        subject: None,
        artifact_type: None,
    }
    .to_go_json();
    blobs.insert(config);

    let mut index = Index::empty();
    index.append(Descriptor::of(media_type::OCI_MANIFEST, &manifest), None);
    blobs.insert(manifest);
    (index.to_go_json(), blobs)
}

/// An uncompressed tar of a few small files, all owned by root with a fixed mtime.
fn demo_layer() -> Vec<u8> {
    let mut tar = Tar::default();
    tar.dir("etc/");
    tar.file(
        "etc/os-release",
        b"NAME=\"sifmount demo\"\nID=sifmount-demo\nVERSION_ID=1\n\
          PRETTY_NAME=\"sifmount demo image\"\n",
    );
    tar.file(
        "hello.txt",
        b"Hello from an OCI-SIF made by sifmount's make-oci-sif example.\n",
    );
    tar.finish()
}

/// The image config, with go-containerregistry's field order (as `config_for_layers`).
fn demo_config(diff_id: &Digest) -> Vec<u8> {
    let mut out = String::new();
    let mut o = GoObject::begin(&mut out);
    o.str("architecture", "amd64");
    o.str("created", CREATED);
    let h = o.key("history");
    h.push_str("[{\"created\":");
    write_str(h, CREATED);
    h.push_str(",\"created_by\":");
    write_str(h, "make-oci-sif example: ADD hello.txt etc/os-release /");
    h.push_str("}]");
    o.str("os", "linux");
    let r = o.key("rootfs");
    r.push_str("{\"type\":\"layers\",\"diff_ids\":[");
    write_str(r, &diff_id.to_string());
    r.push_str("]}");
    let c = o.key("config");
    c.push_str("{\"Env\":[");
    write_str(
        c,
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    c.push_str("]}");
    o.end();
    out.into_bytes()
}

/// A minimal POSIX ustar writer: regular files and directories, root-owned, fixed mtime.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn dir(&mut self, name: &str) {
        self.header(name, 0o755, 0, b'5');
    }

    fn file(&mut self, name: &str, data: &[u8]) {
        self.header(name, 0o644, data.len() as u64, b'0');
        self.0.extend_from_slice(data);
        self.pad();
    }

    /// Two zero blocks end the archive.
    fn finish(mut self) -> Vec<u8> {
        self.0.resize(self.0.len() + 1024, 0);
        self.0
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, kind: u8) {
        assert!(name.len() <= 100, "demo names fit the 100-byte name field");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0); // uid
        octal(&mut h[116..124], 0); // gid
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], MTIME);
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        // The checksum is computed with its own field as spaces, then written as six
        // octal digits, a NUL and a space.
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let digits = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(digits.as_bytes());
        self.0.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rem = self.0.len() % 512;
        if rem != 0 {
            self.0.resize(self.0.len() + 512 - rem, 0);
        }
    }
}

/// A zero-padded octal number filling the field but its last byte (a NUL).
fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}", width = field.len() - 1);
    assert_eq!(s.len(), field.len() - 1, "value fits its tar field");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}
