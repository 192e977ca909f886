//! The compiler: the canonical graph in, a [`Plan`] out — the fused graph, its
//! schedules, each weight's device layout, the activation arena and the KV cache.
//! It reads a model's metadata only, never its weights.

pub mod buffers;
pub mod kv;
pub mod layout;
pub mod passes;
pub mod plan;
pub mod stats;

pub use plan::{compile, CompileOptions, Plan, PlanError};
