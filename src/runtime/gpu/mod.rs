//! The GPU runtime: the graph run on any adapter wgpu reaches, by WGSL kernels from
//! `wgsl/` that mirror the CPU interpreter's kernels op for op.
//!
//! [`GpuContext`] opens a device; [`GpuExecutor`] uploads a graph's weights (as they are
//! in the GGUF, quantised) and builds its pipelines once; each step is one buffer write,
//! one command encoder and one submit. [`Module`] lists every WGSL module it can build.

mod context;
mod error;
mod executor;
mod kv;
mod lower;
mod shaders;
mod weights;

pub use context::{AdapterChoice, GpuContext};
pub use error::GpuError;
pub use executor::{GpuExecutor, GpuOptions};
pub use kv::GpuKvCache;
pub use shaders::{Access, Module, MATMUL_ROWS_PER_GROUP};
