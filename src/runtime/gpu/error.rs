//! What can go wrong on the GPU, each with one message that says what and why.

use crate::runtime::cpu::RunError;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("could not open the device of adapter `{adapter}`: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    #[error("out of GPU memory loading the model: {needed} bytes needed in all, {offered}")]
    OutOfMemory { needed: u64, offered: String },
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("the GPU rejected shader module `{module}`: {reason}")]
    ShaderRejected { module: String, reason: String },
    #[error("the GPU executor cannot run this graph: {0}")]
    Unsupported(String),
    #[error("{tokens} tokens in one step exceed this executor's {max} (GpuOptions::max_tokens)")]
    TooManyTokens { tokens: usize, max: usize },
    #[error("this KV cache belongs to another executor")]
    ForeignCache,
    #[error("GPU error: {0}")]
    Device(String),
    #[error(transparent)]
    Run(#[from] RunError),
}
