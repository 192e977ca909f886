//! Weights on the device, as they are in the GGUF: each tensor goes from the memory map
//! into staging buffers (on every core) and from there into its storage buffers —
//! same-typed tensors one linear reads side by side in one — split by rows into several
//! buffers when larger than one storage binding may be.

use rayon::prelude::*;
use wgpu::WriteOnly;

use super::staging::{StagingRing, SLOT_BYTES};
use super::GpuError;
use crate::compiler::layout::{device_block_bytes, repack_into, Target};
use crate::gguf::GgmlType;

/// A range of whole rows of a weight in one buffer.
pub struct WeightPart {
    pub buffer: wgpu::Buffer,
    pub first_row: usize,
    pub rows: usize,
    pub row_bytes: usize,
}

/// The weight bytes one dispatch reads in a step, for bandwidth figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WeightRead {
    #[default]
    None,
    /// A matmul reads every row of its part, however many tokens: the bytes it must
    /// fetch at least (tiles that read a row again may or may not hit a cache).
    Part(u64),
    /// An embedding reads one row per token. A table split into parts charges each
    /// part's dispatch its share of the rows: the expected bytes when ids are spread
    /// evenly.
    Rows {
        row_bytes: u64,
        part_rows: u64,
        table_rows: u64,
    },
}

impl WeightRead {
    /// All of a matmul's part.
    pub fn matmul(part: &WeightPart) -> WeightRead {
        WeightRead::Part((part.rows * part.row_bytes) as u64)
    }

    /// An embedding's rows from `part` of a table of `table_rows` rows.
    pub fn embed(part: &WeightPart, table_rows: usize) -> WeightRead {
        WeightRead::Rows {
            row_bytes: part.row_bytes as u64,
            part_rows: part.rows as u64,
            table_rows: table_rows.max(1) as u64,
        }
    }

    /// Bytes read in a step of `tokens` tokens.
    pub fn bytes(self, tokens: usize) -> u64 {
        match self {
            WeightRead::None => 0,
            WeightRead::Part(bytes) => bytes,
            WeightRead::Rows {
                row_bytes,
                part_rows,
                table_rows,
            } => row_bytes * tokens as u64 * part_rows / table_rows,
        }
    }
}

/// How `rows` rows of `row_bytes` bytes are split: the rows of each part, in order.
pub fn split_rows(rows: usize, row_bytes: usize, max_binding: u64) -> Result<Vec<usize>, String> {
    let per_part = (max_binding / row_bytes.max(1) as u64) as usize;
    if per_part == 0 {
        return Err(format!(
            "one row of {row_bytes} bytes exceeds the device's largest storage binding of {max_binding} bytes"
        ));
    }
    let mut parts = Vec::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(per_part);
        parts.push(n);
        left -= n;
    }
    Ok(parts)
}

/// Buffer sizes are multiples of 16 (whole vec4s, however a kernel reads them).
pub fn padded(bytes: usize) -> u64 {
    (bytes.max(16) as u64).next_multiple_of(16)
}

/// How rows are stored: in the file, and on the device (blocks padded to words).
#[derive(Debug, Clone, Copy)]
pub struct RowLayout {
    pub ty: GgmlType,
    pub file_row_bytes: usize,
    pub device_row_bytes: usize,
}

impl RowLayout {
    pub fn new(ty: GgmlType, cols: usize) -> RowLayout {
        let blocks = cols / ty.block_size();
        RowLayout {
            ty,
            file_row_bytes: blocks * ty.block_bytes(),
            device_row_bytes: blocks * device_block_bytes(ty, Target::Gpu),
        }
    }
}

/// Bytes of the file one copy task takes (whole rows, at least one): enough to amortise
/// the task, few enough that a tensor spreads over every core. One thread alone copies
/// from the page cache at a fraction of memory bandwidth, and a 7B model's load is
/// mostly this copy.
const TASK_BYTES: usize = 4 << 20;

/// Uploads `segments` — tensors of whole rows, side by side along the rows — as one or
/// more storage buffers in the device layout, copying (or repacking) rows on every core
/// into `ring`'s slots.
pub(super) fn upload(
    ring: &mut StagingRing<'_>,
    label: &str,
    segments: &[&[u8]],
    layout: RowLayout,
    max_binding: u64,
) -> Result<Vec<WeightPart>, GpuError> {
    let rows = segments
        .iter()
        .map(|s| s.len() / layout.file_row_bytes)
        .sum();
    let sizes = split_rows(rows, layout.device_row_bytes, max_binding)
        .map_err(|e| GpuError::Unsupported(format!("weight `{label}`: {e}")))?;
    let row_bytes = layout.device_row_bytes;
    let slot_rows = (SLOT_BYTES / row_bytes.max(1) as u64) as usize;
    if slot_rows == 0 {
        return Err(GpuError::Unsupported(format!(
            "weight `{label}`: one row of {row_bytes} bytes exceeds the {SLOT_BYTES} bytes of a staging buffer"
        )));
    }
    let mut parts = Vec::with_capacity(sizes.len());
    let mut first_row = 0;
    for rows in sizes {
        let buffer = ring.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: padded(rows * row_bytes),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        for r0 in (0..rows).step_by(slot_rows) {
            let n = slot_rows.min(rows - r0);
            let (offset, bytes) = ((r0 * row_bytes) as u64, (n * row_bytes) as u64);
            ring.copy_to(&buffer, offset, bytes, |view| {
                write_rows(view, segments, layout, first_row + r0, n)
            })?;
        }
        parts.push(WeightPart {
            buffer,
            first_row,
            rows,
            row_bytes,
        });
        first_row += rows;
    }
    Ok(parts)
}

/// A piece of a mapped buffer, written on another thread.
struct Chunk<'a>(WriteOnly<'a, [u8]>);

// SAFETY: a `WriteOnly<[u8]>` is a unique pointer to bytes no other chunk covers, as a
// `&mut [u8]` is, which is `Send`; wgpu implements `Send` only for sized targets.
unsafe impl Send for Chunk<'_> {}

/// Writes rows `first_row .. first_row + rows` of `segments` into `dest` in the device
/// layout, a task of whole rows at a time on rayon's pool.
fn write_rows(
    mut dest: WriteOnly<'_, [u8]>,
    segments: &[&[u8]],
    layout: RowLayout,
    first_row: usize,
    rows: usize,
) {
    let RowLayout {
        ty,
        file_row_bytes,
        device_row_bytes,
    } = layout;
    let task_rows = (TASK_BYTES / file_row_bytes.max(1)).max(1);
    let mut tasks = Vec::with_capacity(rows.div_ceil(task_rows));
    for r0 in (0..rows).step_by(task_rows) {
        let n = task_rows.min(rows - r0);
        let rest = dest.split_off(n * device_row_bytes..).unwrap_or_default();
        tasks.push((r0, n, Chunk(std::mem::replace(&mut dest, rest))));
    }
    tasks.into_par_iter().for_each(|(r0, n, Chunk(mut chunk))| {
        // Pieces end at segment boundaries, which are row boundaries.
        let file = pieces(
            segments,
            (first_row + r0) * file_row_bytes,
            n * file_row_bytes,
        );
        if file_row_bytes == device_row_bytes {
            for (at, piece) in file {
                chunk.slice(at..at + piece.len()).copy_from_slice(piece);
            }
        } else {
            let mut staged = Vec::with_capacity(n * device_row_bytes);
            for (_, piece) in file {
                repack_into(ty, piece, device_block_bytes(ty, Target::Gpu), &mut staged);
            }
            chunk.slice(..staged.len()).copy_from_slice(&staged);
        }
    });
}

/// The pieces of bytes `start .. start + len` of the concatenated `segments`, each with
/// its offset from `start`.
fn pieces<'s>(segments: &[&'s [u8]], mut start: usize, len: usize) -> Vec<(usize, &'s [u8])> {
    let mut pieces = Vec::new();
    let mut filled = 0;
    for segment in segments {
        if filled == len {
            break;
        }
        if start >= segment.len() {
            start -= segment.len();
            continue;
        }
        let n = (segment.len() - start).min(len - filled);
        pieces.push((filled, &segment[start..start + n]));
        filled += n;
        start = 0;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_into_parts_that_fit_a_binding() {
        assert_eq!(split_rows(10, 100, 1000), Ok(vec![10]));
        assert_eq!(split_rows(25, 100, 1000), Ok(vec![10, 10, 5]));
        assert_eq!(split_rows(25, 100, 1050), Ok(vec![10, 10, 5]));
        assert!(split_rows(1, 2000, 1000).is_err());
        assert_eq!(split_rows(0, 100, 1000), Ok(vec![]));
    }

    #[test]
    fn parts_copy_across_segment_boundaries() {
        let segments: [&[u8]; 3] = [&[0, 1, 2, 3], &[4, 5], &[6, 7, 8, 9]];
        let two: [&[u8]; 2] = [&[3], &[4, 5]];
        assert_eq!(
            pieces(&segments, 3, 4),
            vec![(0, two[0]), (1, two[1]), (3, &[6u8][..])]
        );
        assert_eq!(pieces(&segments, 6, 4), vec![(0, segments[2])]);
        assert_eq!(pieces(&segments, 0, 2), vec![(0, &[0u8, 1][..])]);
    }

    #[test]
    fn weight_reads_count_parts_whole_and_embeddings_by_token() {
        assert_eq!(WeightRead::None.bytes(7), 0);
        assert_eq!(WeightRead::Part(1000).bytes(1), 1000);
        assert_eq!(WeightRead::Part(1000).bytes(512), 1000);
        let whole = WeightRead::Rows {
            row_bytes: 18,
            part_rows: 10,
            table_rows: 10,
        };
        assert_eq!(whole.bytes(3), 54);
        // Two parts of 6 and 4 rows share one row per token between them.
        let (a, b) = (
            WeightRead::Rows {
                row_bytes: 100,
                part_rows: 6,
                table_rows: 10,
            },
            WeightRead::Rows {
                row_bytes: 100,
                part_rows: 4,
                table_rows: 10,
            },
        );
        assert_eq!(a.bytes(5) + b.bytes(5), 500);
    }
}
