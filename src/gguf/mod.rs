//! GGUF files: reading, the tensor-type table, CPU dequantisation, quantisation and writing.

pub mod dequant;
mod file;
pub mod quantize;
mod reader;
pub mod summary;
pub mod types;
pub mod value;
pub mod writer;

pub use file::GgufFile;
pub use reader::{GgufError, GgufHeader, TensorInfo, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
pub use types::{GgmlType, TypeLayout, QK_K};
pub use value::{Array, Metadata, MetadataError, Value, ValueType};
pub use writer::{GgufWriter, TensorSpec};
