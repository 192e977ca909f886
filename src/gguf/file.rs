//! A GGUF file mapped into memory: the parsed header plus borrowed tensor bytes.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::reader::{GgufError, GgufHeader, TensorInfo};

/// An open GGUF file. Tensor bytes are slices of the memory map, never copies.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    header: GgufHeader,
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        // SAFETY: the map is read-only. Like every mmap-based model loader we rely on
        // the file not being truncated while it is open; the header and every tensor
        // extent are validated against the length seen here.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let header = GgufHeader::parse(&map)?;
        Ok(GgufFile { path, map, header })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The bytes of one tensor, borrowed from the map (extents were checked at open).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.header.data_offset + info.offset) as usize;
        &self.map[start..start + info.n_bytes as usize]
    }

    /// A tensor's info and bytes by name.
    pub fn tensor_data(&self, name: &str) -> Option<(&TensorInfo, &[u8])> {
        let info = self.header.tensor(name)?;
        Some((info, self.tensor_bytes(info)))
    }
}

impl Deref for GgufFile {
    type Target = GgufHeader;

    fn deref(&self) -> &GgufHeader {
        &self.header
    }
}
