//! Running graphs: the CPU interpreter (the reference), the KV cache, sessions and sampling.

pub mod cpu;
mod decode_input;
pub mod gpu;
mod kv;

pub use decode_input::{round_to_int8, DecodeInput, INT8_RUN};
pub use kv::{KvCache, KvType};
pub mod bench;
mod generate;
mod perplexity;
mod sampler;
mod session;

pub use generate::{GenerateOptions, Generation, StopReason, Timings};
pub use perplexity::{perplexity, Perplexity, PerplexityError};
pub use sampler::{argmax, top_k, Candidate, Sampler, SamplerConfig};
pub use session::{LoadError, Model, Session, GPU_STEP_TOKENS};
