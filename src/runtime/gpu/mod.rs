//! The GPU runtime: the graph run on any adapter wgpu reaches, by WGSL kernels from
//! `wgsl/` that mirror the CPU interpreter's kernels op for op.
//!
//! [`GpuContext`] opens a device; [`GpuExecutor`] uploads a graph's weights (as they are
//! in the GGUF, quantised) and builds its pipelines once; each step is one buffer write,
//! one command encoder and one submit. [`Module`] lists every WGSL module it can build.
//! [`profile()`] times each dispatch with timestamp queries; [`copy_bandwidth`] measures
//! the device's roofline.

mod ahead;
mod arena;
mod bandwidth;
mod context;
mod error;
mod executor;
mod fold;
mod kv;
mod lower;
mod pipeline_cache;
mod profile;
mod progress;
mod shaders;
mod shift;
mod staging;
mod top_k;
mod weights;

pub use bandwidth::{copy_bandwidth, CopyBandwidth, COPY_DEFINITION};
pub use context::{AdapterChoice, DeviceFeatures, GpuContext};
pub use error::GpuError;
pub use executor::{GpuExecutor, GpuOptions, PendingToken, StepInput};
pub use kv::GpuKvCache;
pub use lower::LoadTimes;
pub use pipeline_cache::CACHE_DIR_VARIABLE;
pub use profile::{profile, step_gpu_us, DispatchTime, Profile, StepProfile};
pub use shaders::{
    coop_matmul_source, Access, DecodeKernel, DecodeMatrix, Module, Reduction, Specialisation,
    ATTENTION_COMBINE, ATTENTION_SPLIT, COOP_PREFILL, DECODE_MATMUL, LONG_ROWS, WGSL_DIR_VARIABLE,
    WIDE_GROUPS,
};
pub use top_k::TOP_K_MAX;
