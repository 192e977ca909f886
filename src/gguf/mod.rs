//! GGUF files: reading, the tensor-type table, CPU dequantisation, quantisation and writing.

pub mod dequant;
pub mod quantize;
pub mod types;

pub use types::{GgmlType, TypeLayout, QK_K};
