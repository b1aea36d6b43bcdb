//! The input encoding of the `drop_protocol` target, shared with the seeds that are
//! written in it ([`Script`]).

use std::sync::OnceLock;

use base64::Engine as _;

use crate::demo;

/// Staged files are held to this (as in tests/library/volume.rs), so that the size checks are
/// reachable with small inputs.
pub const MAX_STAGED: u64 = 64 << 10;

/// Opcodes: the first byte of each call, modulo [`op::COUNT`].
pub mod op {
    pub const CREATE: u8 = 0;
    pub const WRITE: u8 = 1;
    pub const FLUSH: u8 = 2;
    pub const RELEASE: u8 = 3;
    pub const UNLINK: u8 = 4;
    pub const MKDIR: u8 = 5;
    pub const RMDIR: u8 = 6;
    pub const LOOKUP: u8 = 7;
    pub const READ: u8 = 8;
    pub const OPEN: u8 = 9;
    pub const TRUNCATE: u8 = 10;
    pub const CP: u8 = 11;
    pub const RM_R: u8 = 12;
    pub const CP_R: u8 = 13;
    /// Reads the whole volume.
    pub const WALK: u8 = 14;
    pub const COUNT: u8 = 15;
}

/// Names the protocol gives meaning to (a name byte `2 * i` picks `NAMES[i]`).
pub const NAMES: &[&str] = &[
    "p",
    "p.sig",
    "p.cert",
    "p.pem",
    "p.chain",
    "p.bundle",
    "p.annotations",
    "p.error",
    "q.json",
    "q.json.sig",
    "d",
    "payload",
    "signature",
    "certificate",
    "chain",
    "bundle",
    "rfc3161timestamp",
    "annotations",
    "target",
    "verified",
    "error",
    ".swp",
    "..",
    ".",
    "a/b",
    "",
    "x\ny",
];

/// Signature text in the form cosign writes it (attaching does not check what it says).
pub const SIGNATURE: &[u8] =
    b"MEUCIQDc1jz3hF1p0dM9m5ldl6HgQHn2wLr2D0N0b9iM4QXl5gIgFzUvB8m0y9ZkD7y8J1E0Z4bgq3mJv8w0k1vE0eVZ3gE=";

/// A simple-signing payload for the demo image.
pub fn payload() -> Vec<u8> {
    simple_signing("1")
}

/// A simple-signing payload for the demo image, told apart from others by `n`.
pub fn simple_signing(n: &str) -> Vec<u8> {
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"\"}},\"image\":{{\
         \"docker-manifest-digest\":\"{}\"}},\"type\":\"cosign container image signature\"}},\
         \"optional\":{{\"n\":\"{n}\"}}}}",
        demo().manifest_digest
    )
    .into_bytes()
}

/// Index of each content in [`contents`].
pub mod content {
    pub const PAYLOAD: u8 = 0;
    pub const PAYLOAD_2: u8 = 1;
    pub const SIGNATURE: u8 = 2;
    pub const SIGNATURE_NEWLINE: u8 = 3;
    pub const ENVELOPE: u8 = 4;
    pub const ANNOTATIONS: u8 = 5;
    pub const CERTIFICATE: u8 = 6;
    pub const BUNDLE: u8 = 7;
    pub const NOT_BASE64: u8 = 8;
    pub const EMPTY: u8 = 9;
    /// A content byte at or above this is followed by an inline content.
    pub const INLINE: u8 = 0xFF;
}

/// Contents the protocol gives meaning to, chosen by one byte (below `16 * len`).
pub fn contents() -> &'static [Vec<u8>] {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let b64 = base64::engine::general_purpose::STANDARD;
        let signature = std::str::from_utf8(SIGNATURE).expect("the signature is ASCII");
        let statement = format!(
            "{{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{{\"name\":\"x\",\
             \"digest\":{{\"sha256\":\"{}\"}}}}],\"predicateType\":\"https://example.com/p\",\
             \"predicate\":{{}}}}",
            demo().manifest_digest.hex()
        );
        let envelope = format!(
            "{{\"payloadType\":\"application/vnd.in-toto+json\",\"payload\":\"{}\",\
             \"signatures\":[{{\"keyid\":\"\",\"sig\":\"{signature}\"}}]}}",
            b64.encode(statement),
        );
        let annotations =
            format!("{{\"dev.cosignproject.cosign/signature\":\"{signature}\",\"note\":\"x\"}}");
        vec![
            payload(),
            simple_signing("2"),
            SIGNATURE.to_vec(),
            [SIGNATURE, b"\n"].concat(),
            envelope.into_bytes(),
            annotations.into_bytes(),
            b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec(),
            b"{\"SignedEntryTimestamp\":\"\",\"Payload\":{}}".to_vec(),
            b"not base64!".to_vec(),
            Vec::new(),
        ]
    })
}

/// Where a call is made: a directory operand.
#[derive(Clone, Copy)]
pub enum Dir {
    Root,
    Cosign,
    /// The `k`th directory listed in `/cosign` (modulo their number).
    InCosign(u8),
}

/// A name operand.
#[derive(Clone)]
pub enum Name {
    /// `NAMES[i]`.
    Known(u8),
    /// The `k`th entry of the directory (modulo their number).
    Listed(u8),
    Inline(Vec<u8>),
}

/// A content operand.
#[derive(Clone)]
pub enum Content {
    Known(u8),
    Inline(Vec<u8>),
}

/// Writes inputs for the target, call by call.
#[derive(Default)]
pub struct Script(pub Vec<u8>);

impl Script {
    fn dir(&mut self, d: Dir) -> &mut Self {
        self.0.push(match d {
            Dir::Root => 0,
            Dir::Cosign => 1,
            Dir::InCosign(k) => 4u8.saturating_add(k),
        });
        self
    }

    fn name(&mut self, n: &Name) -> &mut Self {
        match n {
            Name::Known(i) => self.0.push(i << 1),
            Name::Listed(k) => self.0.push((k << 1) | 1),
            Name::Inline(bytes) => {
                self.0.push(0xF0);
                self.0.push(bytes.len().min(31) as u8);
                self.0.extend_from_slice(&bytes[..bytes.len().min(31)]);
            }
        }
        self
    }

    fn content(&mut self, c: &Content) -> &mut Self {
        match c {
            Content::Known(i) => self.0.push(*i),
            Content::Inline(bytes) => {
                let bytes = &bytes[..bytes.len().min(4095)];
                self.0.push(content::INLINE);
                self.0
                    .extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                self.0.extend_from_slice(bytes);
            }
        }
        self
    }

    /// `cp CONTENT DIR/NAME`.
    pub fn cp(&mut self, d: Dir, n: Name, c: Content) -> &mut Self {
        self.0.push(op::CP);
        self.dir(d).name(&n).content(&c)
    }

    pub fn mkdir(&mut self, d: Dir, n: Name) -> &mut Self {
        self.0.push(op::MKDIR);
        self.dir(d).name(&n)
    }

    pub fn rm_r(&mut self, d: Dir, n: Name) -> &mut Self {
        self.0.push(op::RM_R);
        self.dir(d).name(&n)
    }

    /// `cp -r` of directory `src` into `/cosign/NAME`.
    pub fn cp_r(&mut self, src: Dir, n: Name) -> &mut Self {
        self.0.push(op::CP_R);
        self.dir(src).name(&n)
    }

    /// `create` (the handle goes last in the list of open handles).
    pub fn create(&mut self, d: Dir, n: Name) -> &mut Self {
        self.0.push(op::CREATE);
        self.dir(d).name(&n)
    }

    /// A write at offset 0 through open handle `h`.
    pub fn write(&mut self, h: u8, c: Content) -> &mut Self {
        self.0.extend_from_slice(&[op::WRITE, h, 0]);
        self.content(&c)
    }

    pub fn flush(&mut self, h: u8) -> &mut Self {
        self.0.extend_from_slice(&[op::FLUSH, h]);
        self
    }

    pub fn release(&mut self, h: u8) -> &mut Self {
        self.0.extend_from_slice(&[op::RELEASE, h]);
        self
    }

    pub fn unlink(&mut self, d: Dir, n: Name) -> &mut Self {
        self.0.push(op::UNLINK);
        self.dir(d).name(&n)
    }

    pub fn rmdir(&mut self, d: Dir, n: Name) -> &mut Self {
        self.0.push(op::RMDIR);
        self.dir(d).name(&n)
    }

    /// Opens `DIR/NAME` for writing, truncating when asked (`open(2)` of an existing
    /// file).
    pub fn open(&mut self, d: Dir, n: Name, truncate: bool) -> &mut Self {
        self.0.push(op::OPEN);
        self.dir(d).name(&n);
        self.0.push(if truncate { 3 } else { 1 });
        self
    }

    pub fn walk(&mut self) -> &mut Self {
        self.0.push(op::WALK);
        self
    }
}
