//! The 128-byte global header (docs/FORMAT.md, Header).

use super::bytes::*;
use super::error::{Result, SifError};
use super::{arch_name, ZERO_TIME};

pub const HEADER_SIZE: usize = 128;
pub const MAGIC: &[u8; 10] = b"SIF_MAGIC\0";
pub const VERSION: &[u8; 3] = b"01\0";
pub const LAUNCH_SCRIPT_MAX: usize = 31;
/// The largest descriptor table accepted on open: a million slots is a 585 MB table, far
/// beyond any real image, and bounds what a hostile header can make us allocate.
pub const MAX_DESCRIPTORS: i64 = 1 << 20;

/// The global header, field for field as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub launch_script: [u8; 32],
    pub magic: [u8; 10],
    pub version: [u8; 3],
    /// Two ASCII digits and a NUL; `00` = unknown.
    pub arch: [u8; 3],
    /// Raw UUID bytes in RFC 4122 order; all zero for deterministic images.
    pub id: [u8; 16],
    pub created_at: i64,
    pub modified_at: i64,
    pub descriptors_free: i64,
    pub descriptors_total: i64,
    pub descriptors_offset: i64,
    pub descriptors_size: i64,
    pub data_offset: i64,
    pub data_size: i64,
}

impl Header {
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Header {
        Header {
            launch_script: b[0..32].try_into().expect("32-byte slice"),
            magic: b[32..42].try_into().expect("10-byte slice"),
            version: b[42..45].try_into().expect("3-byte slice"),
            arch: b[45..48].try_into().expect("3-byte slice"),
            id: b[48..64].try_into().expect("16-byte slice"),
            created_at: i64_at(b, 64),
            modified_at: i64_at(b, 72),
            descriptors_free: i64_at(b, 80),
            descriptors_total: i64_at(b, 88),
            descriptors_offset: i64_at(b, 96),
            descriptors_size: i64_at(b, 104),
            data_offset: i64_at(b, 112),
            data_size: i64_at(b, 120),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..32].copy_from_slice(&self.launch_script);
        b[32..42].copy_from_slice(&self.magic);
        b[42..45].copy_from_slice(&self.version);
        b[45..48].copy_from_slice(&self.arch);
        b[48..64].copy_from_slice(&self.id);
        put_i64(&mut b, 64, self.created_at);
        put_i64(&mut b, 72, self.modified_at);
        put_i64(&mut b, 80, self.descriptors_free);
        put_i64(&mut b, 88, self.descriptors_total);
        put_i64(&mut b, 96, self.descriptors_offset);
        put_i64(&mut b, 104, self.descriptors_size);
        put_i64(&mut b, 112, self.data_offset);
        put_i64(&mut b, 120, self.data_size);
        b
    }

    /// Checks what the reference reader checks (magic and version).
    pub fn check_identity(&self) -> Result<()> {
        if &self.magic != MAGIC {
            return Err(SifError::NotSif(format!(
                "bad magic {:?}",
                String::from_utf8_lossy(trim_nul(&self.magic))
            )));
        }
        if &self.version != VERSION {
            return Err(SifError::UnsupportedVersion(
                String::from_utf8_lossy(trim_nul(&self.version)).into_owned(),
            ));
        }
        Ok(())
    }

    /// The launch script without its NUL padding.
    pub fn launch_script_bytes(&self) -> &[u8] {
        trim_nul(&self.launch_script)
    }

    /// The architecture code as text, e.g. "02".
    pub fn arch_code(&self) -> String {
        String::from_utf8_lossy(trim_nul(&self.arch)).into_owned()
    }

    /// The Go architecture name ("amd64"), or "unknown".
    pub fn arch_name(&self) -> &'static str {
        arch_name(&self.arch)
    }

    /// The image UUID in its textual form.
    pub fn uuid(&self) -> String {
        format_uuid(&self.id)
    }

    /// Deterministic images (nil UUID, zero times) keep zero times on every change
    /// (docs/FORMAT.md, Header).
    pub fn is_deterministic(&self) -> bool {
        self.id == [0u8; 16] && self.created_at == ZERO_TIME && self.modified_at == ZERO_TIME
    }
}

pub fn format_uuid(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses a textual UUID (with or without dashes) into its 16 raw bytes.
pub fn parse_uuid(s: &str) -> Result<[u8; 16]> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    let bad = || SifError::InvalidArgument(format!("invalid UUID {s:?}"));
    if hex.len() != 32 {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}
