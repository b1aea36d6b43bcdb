//! Descriptors (docs/FORMAT.md, Descriptor table): the 585-byte records of the descriptor table and the
//! typed "extra" metadata of each data type.

use super::arch_name;
use super::bytes::*;
use super::digest::Digest;
use super::error::{Result, SifError};

pub const DESCRIPTOR_SIZE: usize = 585;
pub const NAME_LEN: usize = 128;
pub const EXTRA_LEN: usize = 384;
pub const GROUP_MASK: u32 = 0xF000_0000;

/// The kind of an object (DataType, int32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Deffile,
    EnvVar,
    Labels,
    Partition,
    Signature,
    GenericJson,
    Generic,
    CryptoMessage,
    Sbom,
    OciRootIndex,
    OciBlob,
    /// A value this library does not know; kept as stored.
    Unknown(i32),
}

impl DataType {
    pub fn from_raw(v: i32) -> DataType {
        match v {
            0x4001 => DataType::Deffile,
            0x4002 => DataType::EnvVar,
            0x4003 => DataType::Labels,
            0x4004 => DataType::Partition,
            0x4005 => DataType::Signature,
            0x4006 => DataType::GenericJson,
            0x4007 => DataType::Generic,
            0x4008 => DataType::CryptoMessage,
            0x4009 => DataType::Sbom,
            0x400A => DataType::OciRootIndex,
            0x400B => DataType::OciBlob,
            other => DataType::Unknown(other),
        }
    }

    pub fn raw(self) -> i32 {
        match self {
            DataType::Deffile => 0x4001,
            DataType::EnvVar => 0x4002,
            DataType::Labels => 0x4003,
            DataType::Partition => 0x4004,
            DataType::Signature => 0x4005,
            DataType::GenericJson => 0x4006,
            DataType::Generic => 0x4007,
            DataType::CryptoMessage => 0x4008,
            DataType::Sbom => 0x4009,
            DataType::OciRootIndex => 0x400A,
            DataType::OciBlob => 0x400B,
            DataType::Unknown(v) => v,
        }
    }

    /// The name siftool prints.
    pub fn display_name(self) -> &'static str {
        match self {
            DataType::Deffile => "Def.FILE",
            DataType::EnvVar => "Env.Vars",
            DataType::Labels => "JSON.Labels",
            DataType::Partition => "FS",
            DataType::Signature => "Signature",
            DataType::GenericJson => "JSON.Generic",
            DataType::Generic => "Generic/Raw",
            DataType::CryptoMessage => "Cryptographic Message",
            DataType::Sbom => "SBOM",
            DataType::OciRootIndex => "OCI.RootIndex",
            DataType::OciBlob => "OCI.Blob",
            DataType::Unknown(_) => "Unknown",
        }
    }

    /// Both OCI types carry a digest in their extra field.
    pub fn is_oci(self) -> bool {
        matches!(self, DataType::OciRootIndex | DataType::OciBlob)
    }
}

/// File system type of a partition.
pub mod fs_type {
    pub const SQUASHFS: i32 = 1;
    pub const EXT3: i32 = 2;
    pub const IMMUTABLE_OBJECTS: i32 = 3;
    pub const RAW: i32 = 4;
    pub const ENCRYPTED_SQUASHFS: i32 = 5;

    pub fn name(v: i32) -> &'static str {
        match v {
            SQUASHFS => "Squashfs",
            EXT3 => "Ext3",
            IMMUTABLE_OBJECTS => "Archive",
            RAW => "Raw",
            ENCRYPTED_SQUASHFS => "Encrypted squashfs",
            _ => "Unknown",
        }
    }
}

/// Partition role.
pub mod part_type {
    pub const SYSTEM: i32 = 1;
    pub const PRIM_SYS: i32 = 2;
    pub const DATA: i32 = 3;
    pub const OVERLAY: i32 = 4;

    pub fn name(v: i32) -> &'static str {
        match v {
            SYSTEM => "System",
            PRIM_SYS => "*System",
            DATA => "Data",
            OVERLAY => "Overlay",
            _ => "Unknown",
        }
    }
}

/// Hash of a native SIF signature.
pub mod hash_type {
    pub fn name(v: i32) -> &'static str {
        match v {
            1 => "SHA256",
            2 => "SHA384",
            3 => "SHA512",
            4 => "BLAKE2S_256",
            5 => "BLAKE2B_256",
            _ => "Unknown",
        }
    }
}

/// SBOM format codes.
pub mod sbom_format {
    pub fn name(v: i32) -> &'static str {
        match v {
            1 => "cyclonedx-json",
            2 => "cyclonedx-xml",
            3 => "github-json",
            4 => "spdx-json",
            5 => "spdx-rdf",
            6 => "spdx-tag-value",
            7 => "spdx-yaml",
            8 => "syft-json",
            _ => "unknown",
        }
    }
}

/// The "extra" field read according to the object's data type (docs/FORMAT.md, Descriptor table).
///
/// The signature variant holds the whole 256-byte entity field inline: an `Extra` is a
/// short-lived value decoded from a 585-byte descriptor, and boxing the entity would add
/// an allocation to every decode to save stack space nobody is short of.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extra {
    Partition {
        fs_type: i32,
        part_type: i32,
        arch: [u8; 3],
    },
    Signature {
        hash_type: i32,
        /// The entity field; an OpenPGP signer's fingerprint is its first 20 bytes, all
        /// zero when there is none (DSSE signatures).
        entity: [u8; 256],
    },
    CryptoMessage {
        format_type: i32,
        message_type: i32,
    },
    Sbom {
        format: i32,
    },
    OciDigest(Digest),
    /// Caller-defined bytes (trailing NULs removed).
    Other(Vec<u8>),
}

impl Extra {
    /// Encodes the typed value into a zero-padded extra field.
    pub fn encode(&self) -> [u8; EXTRA_LEN] {
        let mut b = [0u8; EXTRA_LEN];
        match self {
            Extra::Partition {
                fs_type,
                part_type,
                arch,
            } => {
                put_i32(&mut b, 0, *fs_type);
                put_i32(&mut b, 4, *part_type);
                b[8..11].copy_from_slice(arch);
            }
            Extra::Signature { hash_type, entity } => {
                put_i32(&mut b, 0, *hash_type);
                b[4..260].copy_from_slice(entity);
            }
            Extra::CryptoMessage {
                format_type,
                message_type,
            } => {
                put_i32(&mut b, 0, *format_type);
                put_i32(&mut b, 4, *message_type);
            }
            Extra::Sbom { format } => put_i32(&mut b, 0, *format),
            Extra::OciDigest(d) => {
                let s = d.to_string();
                b[..s.len()].copy_from_slice(s.as_bytes());
            }
            Extra::Other(v) => {
                let n = v.len().min(EXTRA_LEN);
                b[..n].copy_from_slice(&v[..n]);
            }
        }
        b
    }

    /// A partition extra for the given file system, role and architecture name ("amd64").
    pub fn partition(fs_type: i32, part_type: i32, arch: &str) -> Result<Extra> {
        Ok(Extra::Partition {
            fs_type,
            part_type,
            arch: super::arch_code(arch)?,
        })
    }

    /// A signature extra with a fingerprint (at most 256 bytes).
    pub fn signature(hash_type: i32, fingerprint: &[u8]) -> Result<Extra> {
        if fingerprint.len() > 256 {
            return Err(SifError::TooLong {
                what: "signature entity",
                len: fingerprint.len(),
                max: 256,
            });
        }
        Ok(Extra::Signature {
            hash_type,
            entity: fixed(fingerprint),
        })
    }
}

/// What LinkedID points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    None,
    Object(u32),
    Group(u32),
}

impl Link {
    pub fn from_raw(raw: u32) -> Link {
        if raw == 0 {
            Link::None
        } else if raw & GROUP_MASK == GROUP_MASK {
            Link::Group(raw & !GROUP_MASK)
        } else {
            Link::Object(raw)
        }
    }

    pub fn raw(self) -> u32 {
        match self {
            Link::None => 0,
            Link::Object(id) => id,
            Link::Group(g) => g | GROUP_MASK,
        }
    }
}

/// One descriptor, every field as stored. Unused slots decode with `used == false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub data_type_raw: i32,
    pub used: bool,
    pub id: u32,
    /// As stored, with the 0xF0000000 bit; see [`Descriptor::group_id`].
    pub group_id_raw: u32,
    /// As stored; see [`Descriptor::link`].
    pub linked_id_raw: u32,
    pub offset: i64,
    pub size: i64,
    pub size_with_padding: i64,
    pub created_at: i64,
    pub modified_at: i64,
    pub uid: i64,
    pub gid: i64,
    pub name: [u8; NAME_LEN],
    pub extra: [u8; EXTRA_LEN],
}

impl Descriptor {
    /// An unused (all-zero) slot.
    pub fn unused() -> Descriptor {
        Descriptor::decode(&[0u8; DESCRIPTOR_SIZE])
    }

    pub fn decode(b: &[u8]) -> Descriptor {
        assert_eq!(b.len(), DESCRIPTOR_SIZE, "descriptor records are 585 bytes");
        Descriptor {
            data_type_raw: i32_at(b, 0),
            used: b[4] != 0,
            id: u32_at(b, 5),
            group_id_raw: u32_at(b, 9),
            linked_id_raw: u32_at(b, 13),
            offset: i64_at(b, 17),
            size: i64_at(b, 25),
            size_with_padding: i64_at(b, 33),
            created_at: i64_at(b, 41),
            modified_at: i64_at(b, 49),
            uid: i64_at(b, 57),
            gid: i64_at(b, 65),
            name: b[73..201].try_into().expect("128-byte slice"),
            extra: b[201..585].try_into().expect("384-byte slice"),
        }
    }

    pub fn encode(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut b = [0u8; DESCRIPTOR_SIZE];
        put_i32(&mut b, 0, self.data_type_raw);
        b[4] = u8::from(self.used);
        put_u32(&mut b, 5, self.id);
        put_u32(&mut b, 9, self.group_id_raw);
        put_u32(&mut b, 13, self.linked_id_raw);
        put_i64(&mut b, 17, self.offset);
        put_i64(&mut b, 25, self.size);
        put_i64(&mut b, 33, self.size_with_padding);
        put_i64(&mut b, 41, self.created_at);
        put_i64(&mut b, 49, self.modified_at);
        put_i64(&mut b, 57, self.uid);
        put_i64(&mut b, 65, self.gid);
        b[73..201].copy_from_slice(&self.name);
        b[201..585].copy_from_slice(&self.extra);
        b
    }

    pub fn data_type(&self) -> DataType {
        DataType::from_raw(self.data_type_raw)
    }

    /// The group number (0 = no group).
    pub fn group_id(&self) -> u32 {
        self.group_id_raw & !GROUP_MASK
    }

    pub fn link(&self) -> Link {
        Link::from_raw(self.linked_id_raw)
    }

    /// The name without NUL padding (lossy UTF-8; names are ASCII in practice).
    pub fn name(&self) -> String {
        String::from_utf8_lossy(trim_nul(&self.name)).into_owned()
    }

    /// The end of the object's bytes in the file.
    pub fn end(&self) -> i64 {
        self.offset.saturating_add(self.size)
    }

    /// The extra field decoded by data type. OCI types whose digest does not parse are an
    /// error naming the bad text.
    pub fn typed_extra(&self) -> Result<Extra> {
        let e = &self.extra;
        Ok(match self.data_type() {
            DataType::Partition => Extra::Partition {
                fs_type: i32_at(e, 0),
                part_type: i32_at(e, 4),
                arch: e[8..11].try_into().expect("3-byte slice"),
            },
            DataType::Signature => Extra::Signature {
                hash_type: i32_at(e, 0),
                entity: e[4..260].try_into().expect("256-byte slice"),
            },
            DataType::CryptoMessage => Extra::CryptoMessage {
                format_type: i32_at(e, 0),
                message_type: i32_at(e, 4),
            },
            DataType::Sbom => Extra::Sbom {
                format: i32_at(e, 0),
            },
            DataType::OciRootIndex | DataType::OciBlob => {
                let text = trim_nul(e);
                let s = std::str::from_utf8(text).map_err(|_| {
                    SifError::InvalidDigest(String::from_utf8_lossy(text).into_owned())
                })?;
                Extra::OciDigest(s.parse()?)
            }
            _ => Extra::Other(trim_nul(e).to_vec()),
        })
    }

    /// The OCI digest of a root index or blob; `None` for other types.
    pub fn oci_digest(&self) -> Option<Result<Digest>> {
        if !self.data_type().is_oci() {
            return None;
        }
        Some(self.typed_extra().map(|e| match e {
            Extra::OciDigest(d) => d,
            _ => unreachable!("OCI data types always decode to a digest"),
        }))
    }

    /// Partition fields, when this is a partition.
    pub fn partition(&self) -> Option<(i32, i32, [u8; 3])> {
        match self.typed_extra() {
            Ok(Extra::Partition {
                fs_type,
                part_type,
                arch,
            }) => Some((fs_type, part_type, arch)),
            _ => None,
        }
    }

    pub fn is_primary_partition(&self) -> bool {
        self.used && matches!(self.partition(), Some((_, part_type::PRIM_SYS, _)))
    }

    /// A human-readable summary of the extra field (for listings).
    pub fn describe_extra(&self) -> String {
        match self.typed_extra() {
            Ok(Extra::Partition {
                fs_type,
                part_type,
                arch,
            }) => format!(
                "{}/{}/{}",
                fs_type::name(fs_type),
                part_type::name(part_type),
                arch_name(&arch)
            ),
            Ok(Extra::Signature { hash_type, entity }) => {
                let fp = &entity[..20];
                if fp.iter().all(|&b| b == 0) {
                    hash_type::name(hash_type).to_string()
                } else {
                    let hex: String = fp.iter().map(|b| format!("{b:02X}")).collect();
                    format!("{}/{}", hash_type::name(hash_type), hex)
                }
            }
            Ok(Extra::CryptoMessage {
                format_type,
                message_type,
            }) => format!("format {format_type}/message {message_type:#x}"),
            Ok(Extra::Sbom { format }) => sbom_format::name(format).to_string(),
            Ok(Extra::OciDigest(d)) => d.to_string(),
            Ok(Extra::Other(v)) => String::from_utf8_lossy(&v).into_owned(),
            Err(e) => format!("<{e}>"),
        }
    }
}

impl Default for Descriptor {
    fn default() -> Self {
        Descriptor::unused()
    }
}
