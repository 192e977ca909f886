//! Parsing a GGUF header (versions 2 and 3) from bytes, with every size checked
//! against the bytes that remain before anything is allocated.
//!
//! Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count, the
//! metadata key/value pairs, the tensor infos, padding to `general.alignment`,
//! then the data section that tensor offsets are relative to. All little-endian.

use std::collections::HashSet;

use super::value::{Array, Metadata, Value, ValueType};
use super::GgmlType;

/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;
/// Arrays may nest; deeper than this is treated as hostile rather than recursed into.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Why a GGUF file could not be read. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not a GGUF file: the first 4 bytes are {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: Vec<u8> },
    #[error("GGUF version {0} is not supported (rustorch reads versions 2 and 3){hint}", hint = if .0.swap_bytes() <= 3 { "; the file looks big-endian" } else { "" })]
    UnsupportedVersion(u32),
    #[error("malformed GGUF at byte {offset}: {message}")]
    Malformed { offset: u64, message: String },
    #[error("tensor `{name}`: {message}")]
    Tensor { name: String, message: String },
}

fn malformed(offset: usize, message: impl Into<String>) -> GgufError {
    GgufError::Malformed {
        offset: offset as u64,
        message: message.into(),
    }
}

fn tensor_error(name: &str, message: impl Into<String>) -> GgufError {
    GgufError::Tensor {
        name: name.to_string(),
        message: message.into(),
    }
}

/// One tensor's entry in the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (the contiguous dimension).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    /// Bytes the tensor occupies, derived from its dims and type.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Shape in the usual outer-to-inner order, as numpy and the gguf Python package print it.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// Everything before the data section.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl GgufHeader {
    /// Parses and validates the header of a GGUF file whose bytes are `bytes`.
    /// Tensor extents are checked against `bytes.len()`.
    pub fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
        let mut cur = Cursor { bytes, pos: 0 };
        let magic = cur.take(4, "the magic number")?;
        if magic != b"GGUF" {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = cur.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = cur.count("the tensor count", 32)?;
        let n_kv = cur.count("the metadata count", 13)?;

        let mut metadata = Metadata::default();
        for _ in 0..n_kv {
            let at = cur.pos;
            let key = cur.string("a metadata key")?;
            let ty = cur.value_type(&key)?;
            let value = cur.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(malformed(at, format!("duplicate metadata key `{key}`")));
            }
        }

        let alignment = match metadata.optional("general.alignment", Metadata::get_u64) {
            Ok(Some(a)) if a.is_power_of_two() => a,
            Ok(None) => DEFAULT_ALIGNMENT,
            Ok(Some(a)) => {
                return Err(malformed(
                    0,
                    format!("general.alignment is {a}; it must be a non-zero power of two"),
                ))
            }
            Err(e) => return Err(malformed(0, e.to_string())),
        };

        let mut tensors = Vec::with_capacity(n_tensors);
        let mut names = HashSet::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let at = cur.pos;
            let info = cur.tensor_info()?;
            if !names.insert(info.name.clone()) {
                return Err(malformed(
                    at,
                    format!("duplicate tensor name `{}`", info.name),
                ));
            }
            tensors.push(info);
        }

        let data_offset = (cur.pos as u64).next_multiple_of(alignment);
        let file_len = bytes.len() as u64;
        for t in &tensors {
            if t.offset % alignment != 0 {
                return Err(tensor_error(
                    &t.name,
                    format!(
                        "data offset {} is not a multiple of the alignment {alignment}",
                        t.offset
                    ),
                ));
            }
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(tensor_error(
                        &t.name,
                        format!(
                            "its {} bytes at data offset {} (file byte {}) run past the end of the {file_len}-byte file",
                            t.n_bytes,
                            t.offset,
                            data_offset.saturating_add(t.offset)
                        ),
                    ))
                }
            }
        }

        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Total bytes of all tensors.
    pub fn weight_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }
}

/// A read position over the file's bytes; every read is bounds-checked and
/// errors name what was being read and where.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(malformed(
                self.pos,
                format!(
                    "file ends while reading {what}: {n} bytes needed, {} left",
                    self.remaining()
                ),
            ));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items that each take at least `min_item_bytes`: rejected when the
    /// rest of the file could not hold them, so it can never size a huge allocation.
    fn count(&mut self, what: &str, min_item_bytes: u64) -> Result<usize, GgufError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let needed = n.checked_mul(min_item_bytes);
        match needed {
            Some(needed) if needed <= self.remaining() => Ok(n as usize),
            _ => Err(malformed(
                at,
                format!(
                    "{what} is {n}, but only {} bytes remain (each item takes at least {min_item_bytes})",
                    self.remaining()
                ),
            )),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(malformed(
                at,
                format!(
                    "{what} claims {len} bytes, but only {} remain",
                    self.remaining()
                ),
            ));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| malformed(at + 8, format!("{what} is not valid UTF-8 ({e})")))
    }

    fn value_type(&mut self, key: &str) -> Result<ValueType, GgufError> {
        let at = self.pos;
        let code = self.u32("a value type")?;
        ValueType::from_code(code).ok_or_else(|| {
            malformed(
                at,
                format!("metadata key `{key}` has unknown value type {code}"),
            )
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<Value, GgufError> {
        let what = || format!("the value of `{key}`");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(&what())?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(&what())?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(&what())?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(&what())?)),
            ValueType::U32 => Value::U32(self.u32(&what())?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(&what())?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(&what())?)),
            ValueType::U64 => Value::U64(self.u64(&what())?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(&what())?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(&what())?)),
            ValueType::Bool => {
                let at = self.pos;
                match self.array::<1>(&what())?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(malformed(at, format!("`{key}` is a bool stored as {b}"))),
                }
            }
            ValueType::String => Value::String(self.string(&what())?),
            ValueType::Array => Value::Array(self.array_value(key, depth)?),
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<Array, GgufError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(malformed(
                self.pos,
                format!("`{key}` nests arrays deeper than {MAX_ARRAY_DEPTH} levels"),
            ));
        }
        let elem = self.value_type(key)?;
        let n = self.count(
            &format!("the length of array `{key}`"),
            elem.min_encoded_size(),
        )?;
        macro_rules! collect {
            ($variant:ident) => {{
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.value(elem, key, depth + 1)? {
                        Value::$variant(v) => items.push(v),
                        _ => unreachable!("value() returns the variant of the type it was given"),
                    }
                }
                Array::$variant(items)
            }};
        }
        Ok(match elem {
            ValueType::U8 => collect!(U8),
            ValueType::I8 => collect!(I8),
            ValueType::U16 => collect!(U16),
            ValueType::I16 => collect!(I16),
            ValueType::U32 => collect!(U32),
            ValueType::I32 => collect!(I32),
            ValueType::F32 => collect!(F32),
            ValueType::Bool => collect!(Bool),
            ValueType::String => collect!(String),
            ValueType::Array => collect!(Array),
            ValueType::U64 => collect!(U64),
            ValueType::I64 => collect!(I64),
            ValueType::F64 => collect!(F64),
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo, GgufError> {
        let name = self.string("a tensor name")?;
        let at = self.pos;
        let n_dims = self.u32("a tensor's dimension count")? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(malformed(
                at,
                format!("tensor `{name}` has {n_dims} dimensions; ggml allows 1 to {MAX_DIMS}"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for _ in 0..n_dims {
            dims.push(self.u64("a tensor dimension")?);
        }
        let at = self.pos;
        let type_id = self.u32("a tensor type")?;
        let ty = GgmlType::from_id(type_id).map_err(|known| match known {
            Some(known_name) => malformed(
                at,
                format!("tensor `{name}` has type {known_name} (ggml type {type_id}), which rustorch does not support"),
            ),
            None => malformed(at, format!("tensor `{name}` has unknown ggml type {type_id}")),
        })?;
        let offset = self.u64("a tensor offset")?;

        if dims.contains(&0) {
            return Err(tensor_error(
                &name,
                format!("has a zero dimension in {dims:?}"),
            ));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| {
                acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
            })
            .ok_or_else(|| tensor_error(&name, format!("dimensions {dims:?} overflow")))?;
        if dims[0] % ty.block_size() as u64 != 0 {
            return Err(tensor_error(
                &name,
                format!(
                    "row length {} is not a multiple of {ty}'s block size {}",
                    dims[0],
                    ty.block_size()
                ),
            ));
        }
        let n_bytes = ty
            .bytes_for(n_elements)
            .ok_or_else(|| tensor_error(&name, format!("size of {dims:?} {ty} overflows")))?;
        Ok(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        })
    }
}
