//! rustorch: runs GGUF language models on any GPU through wgpu, by compiling the model
//! into a static compute graph. See `DESIGN.md` in the repository for the architecture.

pub mod compiler;
pub mod gguf;
pub mod graph;
pub mod model;
pub mod runtime;
pub mod synth;
pub mod text;
pub mod tokenizer;
