//! Each weight's device layout. GPU storage buffers are read in 4-byte words, so
//! blocks whose size is not a multiple of 4 (Q4_0 18 B, Q8_0 34 B, Q5_0 22 B,
//! Q6_K 210 B, …) are padded with zero bytes to the next multiple of 4, which keeps
//! every block — and so every row — word-aligned. A tensor larger than the device's
//! storage-buffer binding limit is split into row ranges, each bound separately.
//! The CPU reads the GGUF's blocks as they are: one part, no padding.

use serde::{Deserialize, Serialize};

use crate::gguf::GgmlType;
use crate::graph::{Graph, Weight};

/// Which executor the plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Gpu,
    Cpu,
}

/// One weight as the device holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightLayout {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// Bytes of one block on the device: the GGUF's block size, padded to a multiple
    /// of 4 for the GPU.
    pub device_block_bytes: usize,
    /// Row ranges bound as separate buffers (one unless the tensor exceeds the
    /// binding limit).
    pub parts: Vec<WeightPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightPart {
    pub first_row: usize,
    pub rows: usize,
    pub bytes: u64,
}

impl WeightLayout {
    /// Whether blocks are padded on the device (the bytes must be repacked at upload).
    pub fn is_repacked(&self) -> bool {
        self.device_block_bytes != self.ty.block_bytes()
    }

    /// Bytes of one row on the device.
    pub fn device_row_bytes(&self) -> u64 {
        (self.cols / self.ty.block_size() * self.device_block_bytes) as u64
    }

    pub fn device_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    pub fn file_bytes(&self) -> u64 {
        (self.rows * (self.cols / self.ty.block_size()) * self.ty.block_bytes()) as u64
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LayoutError {
    #[error("one row of `{name}` takes {row_bytes} bytes, more than the binding limit of {limit}")]
    RowTooLarge {
        name: String,
        row_bytes: u64,
        limit: u64,
    },
}

/// The device block size of `ty`: quantised blocks padded to 4 bytes on the GPU (plain
/// f16/bf16 values are read in pairs and need none).
pub fn device_block_bytes(ty: GgmlType, target: Target) -> usize {
    match target {
        Target::Gpu if ty.block_size() > 1 => ty.block_bytes().next_multiple_of(4),
        _ => ty.block_bytes(),
    }
}

/// The layout of one weight under a binding limit of `max_binding` bytes.
pub fn layout(w: &Weight, target: Target, max_binding: u64) -> Result<WeightLayout, LayoutError> {
    let mut out = WeightLayout {
        name: w.name.clone(),
        ty: w.ty,
        rows: w.rows,
        cols: w.cols,
        device_block_bytes: device_block_bytes(w.ty, target),
        parts: Vec::new(),
    };
    let row_bytes = out.device_row_bytes();
    let rows_per_part = match target {
        Target::Cpu => w.rows,
        Target::Gpu => (max_binding / row_bytes.max(1)) as usize,
    };
    if rows_per_part == 0 {
        return Err(LayoutError::RowTooLarge {
            name: w.name.clone(),
            row_bytes,
            limit: max_binding,
        });
    }
    let mut first_row = 0;
    while first_row < w.rows {
        let rows = rows_per_part.min(w.rows - first_row);
        out.parts.push(WeightPart {
            first_row,
            rows,
            bytes: rows as u64 * row_bytes,
        });
        first_row += rows;
    }
    Ok(out)
}

/// The layouts of every weight the graphs read, each once, in first-use order.
pub fn plan_weights(
    graphs: &[&Graph],
    target: Target,
    max_binding: u64,
) -> Result<Vec<WeightLayout>, LayoutError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for g in graphs {
        for id in g.schedule() {
            for w in g.node(id).op.weights() {
                if seen.insert(w.name.clone()) {
                    out.push(layout(w, target, max_binding)?);
                }
            }
        }
    }
    Ok(out)
}

/// Copies GGUF blocks of type `ty` into the device layout: each block followed by
/// zero bytes up to `device_block_bytes`.
pub fn repack(ty: GgmlType, src: &[u8], device_block_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() / ty.block_bytes() * device_block_bytes);
    repack_into(ty, src, device_block_bytes, &mut out);
    out
}

/// [`repack`], appending to `out`.
pub fn repack_into(ty: GgmlType, src: &[u8], device_block_bytes: usize, out: &mut Vec<u8>) {
    let block = ty.block_bytes();
    for b in src.chunks_exact(block) {
        out.extend_from_slice(b);
        out.resize(out.len() + device_block_bytes - block, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ty: GgmlType, rows: usize, cols: usize) -> Weight {
        Weight {
            name: "w".into(),
            ty,
            rows,
            cols,
        }
    }

    #[test]
    fn unaligned_blocks_are_padded_to_words_on_the_gpu_only() {
        for (ty, padded) in [
            (GgmlType::Q4_0, 20),
            (GgmlType::Q8_0, 36),
            (GgmlType::Q5_0, 24),
            (GgmlType::Q6K, 212),
            (GgmlType::Q4K, 144),
            (GgmlType::Q4_1, 20),
            (GgmlType::F16, 2),
        ] {
            assert_eq!(device_block_bytes(ty, Target::Gpu), padded, "{ty}");
            assert_eq!(device_block_bytes(ty, Target::Cpu), ty.block_bytes());
        }
        let l = layout(&w(GgmlType::Q8_0, 3, 64), Target::Gpu, 1 << 27).unwrap();
        assert!(l.is_repacked());
        assert_eq!(l.device_row_bytes(), 72);
        assert_eq!(l.file_bytes(), 3 * 68);
    }

    #[test]
    fn repacking_keeps_each_block_and_zero_pads_it() {
        let src: Vec<u8> = (0..68).map(|i| i as u8 + 1).collect();
        let out = repack(GgmlType::Q8_0, &src, 36);
        assert_eq!(out.len(), 72);
        assert_eq!(&out[..34], &src[..34]);
        assert_eq!(&out[34..36], &[0, 0]);
        assert_eq!(&out[36..70], &src[34..]);
    }

    #[test]
    fn tensors_over_the_binding_limit_split_at_row_boundaries() {
        // 1000 rows of 4096 Q4_K weights: 2304 B a row, 2.3 MB in all.
        let l = layout(&w(GgmlType::Q4K, 1000, 4096), Target::Gpu, 1 << 20).unwrap();
        let rows: Vec<usize> = l.parts.iter().map(|p| p.rows).collect();
        assert_eq!(rows, [455, 455, 90]);
        assert!(l.parts.iter().all(|p| p.bytes <= 1 << 20));
        assert_eq!(l.device_bytes(), l.file_bytes());
        let err = layout(&w(GgmlType::F32, 2, 1024), Target::Gpu, 1000).unwrap_err();
        assert!(matches!(err, LayoutError::RowTooLarge { .. }));
    }
}
