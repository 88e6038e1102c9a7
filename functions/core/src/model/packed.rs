//! Tree nodes stored compactly: a node array is serialized as one base64 string of its
//! little-endian bytes instead of a JSON array of objects. A 100-tree forest then reads back
//! in a few milliseconds (a JSON array of floats parses at tens of MB/s) and its artifact is
//! about half the size, which is most of a predictor's cold start.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serializer, de::Error};

/// A fixed-size record with a little-endian byte form.
pub trait Packed: Sized {
    const SIZE: usize;
    fn write(&self, out: &mut Vec<u8>);
    fn read(bytes: &[u8]) -> Self;
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn serialize<T: Packed, S: Serializer>(items: &[T], serializer: S) -> Result<S::Ok, S::Error> {
    let mut bytes = Vec::with_capacity(items.len() * T::SIZE);
    for item in items {
        item.write(&mut bytes);
    }
    serializer.serialize_str(&BASE64.encode(bytes))
}

pub fn deserialize<'de, T: Packed, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    let bytes = BASE64
        .decode(text.as_bytes())
        .map_err(|e| D::Error::custom(format!("packed nodes are not base64: {e}")))?;
    if bytes.len() % T::SIZE != 0 {
        return Err(D::Error::custom(format!(
            "packed nodes: {} bytes is not a whole number of {}-byte records",
            bytes.len(),
            T::SIZE
        )));
    }
    Ok(bytes.chunks_exact(T::SIZE).map(T::read).collect())
}

/// Reads a little-endian `u32` at `at`.
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Node covers (see [`super::shap`]) are stored like the nodes: packed.
impl Packed for f64 {
    const SIZE: usize = 8;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(bytes: &[u8]) -> f64 {
        f64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }
}

impl Packed for f32 {
    const SIZE: usize = 4;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(bytes: &[u8]) -> f32 {
        f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
    }
}
