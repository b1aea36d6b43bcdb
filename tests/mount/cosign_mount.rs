//! `/cosign` through a real mount: the real cosign fixtures read with `cat`
//! equal the source layout, `--key` gives `verified` files, `signatures/` links resolve,
//! and an image with 1,000 signatures lists quickly (the time is printed, not asserted:
//! speed is the benchmark's job).
//!
//! Needs /dev/fuse and `fusermount3` (`.ci/run` installs them); fails, saying so, when one
//! is missing.

use std::fs;
use std::path::Path;
use std::time::Instant;

use crate::common::mounted::{ls, Mode, Mount};
use crate::common::{self, cosign_data, cosign_sif, mounted, upstream};
use sifmount::oci::{media_type, write_oci_sif_at_path, Descriptor, Index, LayoutDir, Sources};

const TARGET: &str = "432f982638b3aefab73cc58ab28f5c16e96fdb504e8c134fc58dff4bae8bf338";

fn mount_with_key(image: &Path, key: &str) -> Mount {
    let key = cosign_data(key);
    let key = key.to_str().expect("test data paths are UTF-8");
    Mount::new(image, Mode::Daemon, &["--key", key])
}

#[test]
fn real_fixture_through_the_mount_equals_the_layout_and_verifies() {
    let image = upstream("generated/hello-world-cosign-manifest.oci.sif");
    let m = mount_with_key(&image, "keys/singularity-cosign.pub");
    let mp = &m.mountpoint;
    let layout = cosign_data("ocitools-hello-world-cosign-manifest/blobs/sha256");
    let entries = ls(&mp.join("cosign"));
    assert_eq!(entries, ["att-432f982638b3a-1", "sig-432f982638b3a-1"]);
    let sig = mp.join("cosign/sig-432f982638b3a-1");
    assert_eq!(
        fs::read(sig.join("payload")).unwrap(),
        fs::read(layout.join("bbfb5811b9c372086df099d763e00380ea89957b527694c98327fc1a96bf9464"))
            .unwrap()
    );
    assert_eq!(
        fs::read_to_string(sig.join("signature")).unwrap(),
        "MEYCIQCvk/Hm0uRosi3yQQ4T5TnBkI0MFdydeKtVpDhA5IatGgIhAJ0DgXgf9qKP/sQqdCaSIff3tmm3rS5PjANp3WCG/bJ4"
    );
    let att = mp.join("cosign/att-432f982638b3a-1");
    assert_eq!(
        fs::read(att.join("payload")).unwrap(),
        fs::read(layout.join("51a5ebe9c08828b74e4c6b65c2398591df2288eacbe411bc97a9e39ef104b99a"))
            .unwrap()
    );
    assert_eq!(
        fs::read_to_string(att.join("predicate-type")).unwrap(),
        "https://cosign.sigstore.dev/attestation/v1\n"
    );
    for entry in &entries {
        let v = fs::read_to_string(mp.join("cosign").join(entry).join("verified")).unwrap();
        assert!(v.starts_with("ok: "), "{entry}: {v}");
        // The image's signatures/ link leads to the same directory.
        let linked = mp
            .join("images/sha256-432f982638b3/signatures")
            .join(entry)
            .join("verified");
        assert_eq!(fs::read_to_string(linked).unwrap(), v);
    }
}

#[test]
fn a_wrong_key_says_why_each_entry_fails() {
    let image = upstream("generated/hello-world-cosign-manifest-list.oci.sif");
    let m = mount_with_key(&image, "keys/synth-cosign.pub");
    let mut count = 0;
    for e in ls(&m.mountpoint.join("cosign")) {
        let v = fs::read_to_string(m.mountpoint.join("cosign").join(e).join("verified")).unwrap();
        assert!(
            v.starts_with("failed: ")
                && v.contains("does not verify")
                && v.contains("synth-cosign.pub"),
            "{v}"
        );
        count += 1;
    }
    assert_eq!(count, 11);
}

#[test]
fn an_unreadable_key_is_an_error_before_mounting() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pub");
    fs::write(&bad, "not a key\n").unwrap();
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).unwrap();
    let out = std::process::Command::new(mounted::sifmount_bin())
        .arg("--key")
        .arg(&bad)
        .args(["-o", "ro"])
        .arg(upstream("generated/hello-world-cosign-manifest.oci.sif"))
        .arg(&mp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("sifmount: ") && err.contains("bad.pub"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!mounted::is_mounted(&mp));
}

/// An OCI-SIF with the hello-world image and one `.sig` image of `count` layers.
fn many_signatures(out: &Path, count: usize) {
    let layout = LayoutDir::new(cosign_data("ocitools-hello-world-cosign-manifest"));
    let layers = (0..count)
        .map(|i| {
            let payload =
                common::simple_signing(&format!("sha256:{TARGET}"), &format!(r#"{{"n":"{i}"}}"#));
            let annotations = [(
                "dev.cosignproject.cosign/signature".to_string(),
                "MEUCIQ==".to_string(),
            )]
            .into();
            (
                "application/vnd.dev.cosign.simplesigning.v1+json".to_string(),
                payload,
                annotations,
            )
        })
        .collect();
    let (manifest, blobs) = cosign_sif::signature_image(layers);
    let target_manifest = fs::read(cosign_data(&format!(
        "ocitools-hello-world-cosign-manifest/blobs/sha256/{TARGET}"
    )))
    .unwrap();
    let mut index = Index::empty();
    index.append(
        Descriptor::of(media_type::DOCKER_MANIFEST, &target_manifest),
        None,
    );
    index.append(
        Descriptor::of(media_type::OCI_MANIFEST, &manifest),
        Some(&format!("_cosign:sha256-{TARGET}.sig")),
    );
    let source = Sources(vec![&blobs, &layout]);
    write_oci_sif_at_path(out, &index.to_go_json(), &source, 8).unwrap();
}

#[test]
fn a_thousand_signatures_list_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("many.sif");
    many_signatures(&image, 1000);
    let m = Mount::daemon(&image);
    let cosign = m.mountpoint.join("cosign");

    // `ls -l`: a listing and a stat of every entry.
    let start = Instant::now();
    let out = std::process::Command::new("ls")
        .arg("-l")
        .arg(&cosign)
        .output()
        .unwrap();
    let ls_time = start.elapsed();
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('d'))
        .count();
    assert_eq!(listed, 1000);

    let start = Instant::now();
    let mut bytes = 0;
    for i in 1..=1000 {
        let p = cosign.join(format!("sig-{}-{i}/payload", &TARGET[..13]));
        let payload = fs::read(&p).unwrap();
        assert!(
            String::from_utf8_lossy(&payload).contains(&format!(r#""n":"{}""#, i - 1)),
            "{} holds layer {}",
            p.display(),
            i - 1
        );
        bytes += payload.len();
    }
    let cat_time = start.elapsed();
    eprintln!(
        "1,000 signatures: mount {:?}, ls -l cosign/ {ls_time:?}, cat */payload ({bytes} bytes) {cat_time:?}",
        m.mount_time
    );
}
