//! The ggml tensor types rustorch reads: one table of ids, names and block layouts.
//!
//! Every other module asks this table for a block's size; nothing else hard-codes it.

use std::fmt;

/// A ggml tensor element type that rustorch can read and dequantise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    IQ4NL,
    IQ4XS,
}

/// The layout of one type: its ggml id, its name as ggml prints it, how many
/// weights one block holds and how many bytes the block takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeLayout {
    pub id: u32,
    pub name: &'static str,
    pub block_size: usize,
    pub block_bytes: usize,
}

const fn layout(id: u32, name: &'static str, block_size: usize, block_bytes: usize) -> TypeLayout {
    TypeLayout {
        id,
        name,
        block_size,
        block_bytes,
    }
}

/// Super-block size of the k-quants and IQ4_XS.
pub const QK_K: usize = 256;

impl GgmlType {
    /// Every supported type, in ggml id order.
    pub const ALL: [GgmlType; 15] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::IQ4NL,
        GgmlType::IQ4XS,
        GgmlType::BF16,
    ];

    /// The single source of truth for ids and block layouts (ggml's `ggml_type_traits`).
    pub const fn layout(self) -> TypeLayout {
        match self {
            GgmlType::F32 => layout(0, "F32", 1, 4),
            GgmlType::F16 => layout(1, "F16", 1, 2),
            GgmlType::Q4_0 => layout(2, "Q4_0", 32, 18),
            GgmlType::Q4_1 => layout(3, "Q4_1", 32, 20),
            GgmlType::Q5_0 => layout(6, "Q5_0", 32, 22),
            GgmlType::Q5_1 => layout(7, "Q5_1", 32, 24),
            GgmlType::Q8_0 => layout(8, "Q8_0", 32, 34),
            GgmlType::Q2K => layout(10, "Q2_K", QK_K, 84),
            GgmlType::Q3K => layout(11, "Q3_K", QK_K, 110),
            GgmlType::Q4K => layout(12, "Q4_K", QK_K, 144),
            GgmlType::Q5K => layout(13, "Q5_K", QK_K, 176),
            GgmlType::Q6K => layout(14, "Q6_K", QK_K, 210),
            GgmlType::IQ4NL => layout(20, "IQ4_NL", 32, 18),
            GgmlType::IQ4XS => layout(23, "IQ4_XS", QK_K, 136),
            GgmlType::BF16 => layout(30, "BF16", 1, 2),
        }
    }

    pub const fn id(self) -> u32 {
        self.layout().id
    }

    pub const fn name(self) -> &'static str {
        self.layout().name
    }

    pub const fn block_size(self) -> usize {
        self.layout().block_size
    }

    pub const fn block_bytes(self) -> usize {
        self.layout().block_bytes
    }

    /// Looks a type up by its ggml id. Ids ggml defines but rustorch cannot read
    /// come back as `Err(Some(name))`, ids nobody defines as `Err(None)`.
    pub fn from_id(id: u32) -> Result<GgmlType, Option<&'static str>> {
        if let Some(ty) = Self::ALL.iter().find(|t| t.id() == id) {
            return Ok(*ty);
        }
        Err(unsupported_ggml_type_name(id))
    }

    /// Looks a type up by ggml's name, case-insensitively ("q4_k", "Q4_K").
    pub fn from_name(name: &str) -> Option<GgmlType> {
        Self::ALL
            .iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .copied()
    }

    /// Bytes taken by `n_weights` weights, or `None` when `n_weights` is not a
    /// whole number of blocks or the size overflows.
    pub fn bytes_for(self, n_weights: u64) -> Option<u64> {
        let bs = self.block_size() as u64;
        if !n_weights.is_multiple_of(bs) {
            return None;
        }
        (n_weights / bs).checked_mul(self.block_bytes() as u64)
    }

    /// True for block-quantised types (everything but the plain floats).
    pub const fn is_quantized(self) -> bool {
        self.block_size() > 1
    }
}

/// Names of the ggml types that exist but rustorch does not support, for error messages.
fn unsupported_ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        9 => "Q8_1",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        21 => "IQ3_S",
        22 => "IQ2_S",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

/// Serialised as ggml's name (`"Q4_K"`), as plan files and JSON dumps show it.
impl serde::Serialize for GgmlType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for GgmlType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        GgmlType::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown ggml type `{name}`")))
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for ty in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(ty.id()), Ok(ty));
            assert_eq!(GgmlType::from_name(ty.name()), Some(ty));
        }
        let mut ids: Vec<u32> = GgmlType::ALL.iter().map(|t| t.id()).collect();
        ids.dedup();
        assert_eq!(ids.len(), GgmlType::ALL.len());
    }

    #[test]
    fn unsupported_and_unknown_ids_are_told_apart() {
        assert_eq!(GgmlType::from_id(16), Err(Some("IQ2_XXS")));
        assert_eq!(GgmlType::from_id(1000), Err(None));
    }

    #[test]
    fn bytes_for_requires_whole_blocks() {
        assert_eq!(GgmlType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(GgmlType::Q4_0.bytes_for(65), None);
        assert_eq!(GgmlType::Q6K.bytes_for(4096 * 256), Some(4096 * 210));
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
    }
}
