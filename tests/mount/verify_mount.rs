//! Verification through a real mount (the man page, VERIFYING and CONTENT TRUST): a
//! keyless signature checked by identity and issuer shows in the entry's `verified` and
//! the image's `signed`; `-o require_signed` hides what does not verify and the kernel
//! gets EACCES for the blobs withheld.

use std::path::Path;

use crate::common::mounted::{ls, Mode, Mount};
use crate::common::{cosign_data, cosign_sif, upstream};

const GITHUB: &str = "https://github.com/login/oauth";
const KEYLESS: &str = "containers-image/dir-img-cosign-fulcio-rekor-valid";

fn mount(image: &Path, args: &[&str]) -> Mount {
    let mut all = vec!["-o", "ro"];
    all.extend_from_slice(args);
    Mount::new(image, Mode::Foreground, &all)
}

#[test]
fn a_keyless_signature_verifies_by_identity_through_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let sif = dir.path().join("keyless.oci.sif");
    let target = cosign_sif::containers_image_sif_with_target(&cosign_data(KEYLESS), &sif, |_| {});
    let image = format!("sha256-{}", &target.hex()[..12]);
    let identity = [
        "--certificate-identity",
        "mitr@redhat.com",
        "--certificate-oidc-issuer",
        GITHUB,
    ];

    let m = mount(&sif, &identity);
    let entries = ls(&m.path("cosign"));
    let [entry] = entries.as_slice() else {
        panic!("one entry: {entries:?}")
    };
    let verified = std::fs::read_to_string(m.path("cosign").join(entry).join("verified")).unwrap();
    assert_eq!(
        verified,
        "ok: signed by mitr@redhat.com (issuer https://github.com/login/oauth), \
         logged at 2023-01-20T20:51:33Z\n"
    );
    let signed = std::fs::read_to_string(m.path("images").join(&image).join("signed")).unwrap();
    assert_eq!(
        signed.lines().next(),
        Some(format!("verified: by 1 of 1 entry ({entry})").as_str()),
        "{signed}"
    );
    m.unmount();

    // require_signed with the identity that signed: the image is shown.
    let mut args = identity.to_vec();
    args.extend(["-o", "require_signed"]);
    let m = mount(&sif, &args);
    assert_eq!(ls(&m.path("images")), std::slice::from_ref(&image));
    std::fs::read(m.path("blobs/sha256").join(target.hex())).unwrap();
    m.unmount();

    // With another identity: not shown, and its manifest is refused with EACCES.
    let m = mount(
        &sif,
        &[
            "--certificate-identity",
            "someone@example.com",
            "--certificate-oidc-issuer",
            GITHUB,
            "-o",
            "require_signed",
        ],
    );
    assert!(
        ls(&m.path("images")).is_empty(),
        "{:?}",
        ls(&m.path("images"))
    );
    let blob = m.path("blobs/sha256").join(target.hex());
    assert!(blob.exists(), "withheld blobs are still listed");
    let err = std::fs::read(&blob).expect_err("a withheld blob is not served");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    let verified = std::fs::read_to_string(m.path("cosign").join(entry).join("verified")).unwrap();
    assert!(
        verified.starts_with("failed: the certificate's identity mitr@redhat.com is not"),
        "{verified}"
    );
    m.unmount();
}

#[test]
fn require_signed_with_the_right_key_serves_the_whole_image() {
    let sif = upstream("generated/hello-world-cosign-manifest.oci.sif");
    let key = cosign_data("keys/singularity-cosign.pub");
    let m = mount(
        &sif,
        &["--key", key.to_str().unwrap(), "-o", "require_signed"],
    );
    assert_eq!(ls(&m.path("images")), ["sha256-432f982638b3"]);
    // Every blob is readable: this image uses them all or they are its signatures'.
    for name in ls(&m.path("blobs/sha256")) {
        std::fs::read(m.path("blobs/sha256").join(&name))
            .unwrap_or_else(|e| panic!("blobs/sha256/{name}: {e}; log:\n{}", m.log_text()));
    }
    m.unmount();
}
