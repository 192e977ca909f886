//! Weights on the device, as they are in the GGUF: each tensor goes from the memory map
//! straight into buffers mapped at creation, split by rows into several buffers when
//! it is larger than one storage binding may be.

use super::GpuError;

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

/// Buffer sizes are multiples of 4.
pub fn padded(bytes: usize) -> u64 {
    (bytes.max(4) as u64).next_multiple_of(4)
}

/// Uploads `bytes` (`rows` rows of `row_bytes`) as one or more storage buffers.
pub fn upload(
    device: &wgpu::Device,
    label: &str,
    bytes: &[u8],
    rows: usize,
    row_bytes: usize,
    max_binding: u64,
) -> Result<Vec<WeightPart>, GpuError> {
    let sizes = split_rows(rows, row_bytes, max_binding)
        .map_err(|e| GpuError::Unsupported(format!("weight `{label}`: {e}")))?;
    let mut parts = Vec::with_capacity(sizes.len());
    let mut first_row = 0;
    for rows in sizes {
        let src = &bytes[first_row * row_bytes..(first_row + rows) * row_bytes];
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: padded(src.len()),
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: true,
        });
        {
            let mut view = buffer
                .get_mapped_range_mut(..)
                .map_err(|e| GpuError::Device(format!("mapping `{label}`: {e}")))?;
            view.slice(..src.len()).copy_from_slice(src);
        }
        buffer.unmap();
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
