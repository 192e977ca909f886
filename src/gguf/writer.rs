//! Writing GGUF (version 3): metadata, a tensor table with aligned offsets, and
//! tensor data streamed to the sink one tensor at a time, so a 7B model is never
//! held in memory.

use std::io::{self, Write};

use super::reader::DEFAULT_ALIGNMENT;
use super::value::{Array, Value};
use super::GgmlType;

/// A tensor to be written: its name, ggml-order dims (`dims[0]` = row length) and type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl TensorSpec {
    pub fn new(name: impl Into<String>, dims: &[u64], ty: GgmlType) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            ty,
        }
    }

    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data, or `None` when the row length is not a whole number of blocks.
    pub fn n_bytes(&self) -> Option<u64> {
        if self.dims.first()? % self.ty.block_size() as u64 != 0 {
            return None;
        }
        self.ty.bytes_for(self.n_elements())
    }
}

/// Collects metadata and tensor specs, then writes the file in one pass.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets the data alignment and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> io::Result<()> {
        if !alignment.is_power_of_two() {
            return Err(invalid(format!(
                "alignment {alignment} is not a power of two"
            )));
        }
        self.alignment = alignment.into();
        self.set("general.alignment", Value::U32(alignment));
        Ok(())
    }

    /// Sets a metadata value, replacing an earlier one with the same key.
    pub fn set(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key, value)),
        }
        self
    }

    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Adds a tensor to the table; rejects duplicate names and partial blocks.
    pub fn add_tensor(&mut self, spec: TensorSpec) -> io::Result<()> {
        if self.tensors.iter().any(|t| t.name == spec.name) {
            return Err(invalid(format!("duplicate tensor `{}`", spec.name)));
        }
        if spec.dims.is_empty() || spec.dims.len() > super::MAX_DIMS || spec.n_bytes().is_none() {
            return Err(invalid(format!(
                "tensor `{}`: dims {:?} do not fit type {}",
                spec.name, spec.dims, spec.ty
            )));
        }
        self.tensors.push(spec);
        Ok(())
    }

    /// Writes the whole file. `fill(i, spec, sink)` must write exactly the bytes of
    /// tensor `i`; it is called once per tensor, in table order. Returns the bytes written.
    pub fn write<W: Write>(
        &self,
        out: W,
        mut fill: impl FnMut(usize, &TensorSpec, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        let mut out = CountingWriter {
            inner: out,
            count: 0,
        };
        out.write_all(b"GGUF")?;
        out.write_all(&3u32.to_le_bytes())?;
        out.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        out.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            write_string(&mut out, key)?;
            out.write_all(&(value.value_type() as u32).to_le_bytes())?;
            write_value(&mut out, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_string(&mut out, &t.name)?;
            out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                out.write_all(&d.to_le_bytes())?;
            }
            out.write_all(&t.ty.id().to_le_bytes())?;
            out.write_all(&offset.to_le_bytes())?;
            offset = (offset + t.n_bytes().unwrap_or(0)).next_multiple_of(self.alignment);
        }
        self.pad(&mut out)?;
        for (i, t) in self.tensors.iter().enumerate() {
            let start = out.count;
            fill(i, t, &mut out)?;
            let written = out.count - start;
            let expected = t.n_bytes().unwrap_or(0);
            if written != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "tensor `{}`: {written} bytes written, {expected} expected",
                        t.name
                    ),
                ));
            }
            self.pad(&mut out)?;
        }
        out.flush()?;
        Ok(out.count)
    }

    fn pad<W: Write>(&self, out: &mut CountingWriter<W>) -> io::Result<()> {
        let padding = out.count.next_multiple_of(self.alignment) - out.count;
        out.write_all(&vec![0u8; padding as usize])
    }
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_value(out: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U8(v) => out.write_all(&v.to_le_bytes()),
        Value::I8(v) => out.write_all(&v.to_le_bytes()),
        Value::U16(v) => out.write_all(&v.to_le_bytes()),
        Value::I16(v) => out.write_all(&v.to_le_bytes()),
        Value::U32(v) => out.write_all(&v.to_le_bytes()),
        Value::I32(v) => out.write_all(&v.to_le_bytes()),
        Value::F32(v) => out.write_all(&v.to_le_bytes()),
        Value::Bool(v) => out.write_all(&[u8::from(*v)]),
        Value::String(v) => write_string(out, v),
        Value::Array(a) => write_array(out, a),
        Value::U64(v) => out.write_all(&v.to_le_bytes()),
        Value::I64(v) => out.write_all(&v.to_le_bytes()),
        Value::F64(v) => out.write_all(&v.to_le_bytes()),
    }
}

fn write_array(out: &mut impl Write, array: &Array) -> io::Result<()> {
    out.write_all(&(array.element_type() as u32).to_le_bytes())?;
    out.write_all(&(array.len() as u64).to_le_bytes())?;
    macro_rules! each {
        ($items:expr, $wrap:path) => {
            for item in $items {
                write_value(out, &$wrap(item.clone()))?;
            }
        };
    }
    match array {
        Array::U8(v) => out.write_all(v)?,
        Array::I8(v) => each!(v, Value::I8),
        Array::U16(v) => each!(v, Value::U16),
        Array::I16(v) => each!(v, Value::I16),
        Array::U32(v) => each!(v, Value::U32),
        Array::I32(v) => each!(v, Value::I32),
        Array::F32(v) => each!(v, Value::F32),
        Array::Bool(v) => each!(v, Value::Bool),
        Array::String(v) => {
            for s in v {
                write_string(out, s)?;
            }
        }
        Array::Array(v) => {
            for inner in v {
                write_array(out, inner)?;
            }
        }
        Array::U64(v) => each!(v, Value::U64),
        Array::I64(v) => each!(v, Value::I64),
        Array::F64(v) => each!(v, Value::F64),
    }
    Ok(())
}
