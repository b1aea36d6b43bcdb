//! `sha256:<hex>` digests, the only algorithm the reference reader accepts.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use super::error::SifError;

/// A SHA-256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn from_bytes(b: [u8; 32]) -> Digest {
        Digest(b)
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Marks a byte that is not a lower-case hex digit in [`HEX_VALUE`].
const BAD: u8 = 0x80;

/// The value of each lower-case hex digit; [`BAD`] for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl FromStr for Digest {
    type Err = SifError;

    /// Accepts exactly `sha256:` and 64 lower-case hex digits, as the reference reader does.
    fn from_str(s: &str) -> Result<Digest, SifError> {
        // Every blob's digest is parsed at mount, several times over: keep the loop free
        // of the (large) error type, built only when a digest is bad, and of branches.
        let parse = |s: &str| -> Option<[u8; 32]> {
            let hex = s.strip_prefix("sha256:")?.as_bytes();
            if hex.len() != 64 {
                return None;
            }
            let mut out = [0u8; 32];
            // OR of every looked-up value: BAD's high bit survives if any digit was bad.
            let mut seen = 0u8;
            for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
                let (hi, lo) = (
                    HEX_VALUE[usize::from(pair[0])],
                    HEX_VALUE[usize::from(pair[1])],
                );
                seen |= hi | lo;
                *o = hi << 4 | lo;
            }
            (seen & BAD == 0).then_some(out)
        };
        parse(s)
            .map(Digest)
            .ok_or_else(|| SifError::InvalidDigest(s.chars().take(100).collect()))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// SHA-256 over a stream of chunks.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let d = Digest::of(b"");
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert!(s.to_uppercase().parse::<Digest>().is_err());
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(s[..70].parse::<Digest>().is_err());
        assert!(format!("{s}0").parse::<Digest>().is_err());
        assert!(s.replace('e', "g").parse::<Digest>().is_err());
    }
}
