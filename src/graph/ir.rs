//! The graph IR: ops with typed outputs over symbolic dims, weights as references
//! into the GGUF, and the KV cache as explicit state.
//!
//! Every op's meaning is written once, in the CPU interpreter
//! (`runtime::cpu::kernels`); this file says only what each op takes and gives.

use serde::{Deserialize, Serialize};

use crate::gguf::GgmlType;
use crate::model::RopeMode;

/// A dimension: fixed, or one of the two sizes that vary per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    Fixed(usize),
    /// `T`: tokens in this step (1 when decoding, the chunk length when prefilling).
    Tokens,
    /// `P + T`: the past length plus this step's tokens, the keys a query can see.
    Context,
}

/// The per-step values that give the symbolic dims their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// `P`: tokens already in the KV cache.
    pub past: usize,
    /// `T`: tokens processed now.
    pub tokens: usize,
}

impl Dim {
    pub fn resolve(self, step: Step) -> usize {
        match self {
            Dim::Fixed(n) => n,
            Dim::Tokens => step.tokens,
            Dim::Context => step.past + step.tokens,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    F32,
    F16,
    I32,
}

/// An output's element type and shape (row-major: the last dim is contiguous).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn f32(shape: &[Dim]) -> TensorType {
        TensorType {
            dtype: DType::F32,
            shape: shape.to_vec(),
        }
    }

    pub fn elements(&self, step: Step) -> usize {
        self.shape.iter().map(|d| d.resolve(step)).product()
    }

    /// Size of the last dimension when it is fixed.
    pub fn row_len(&self) -> Option<usize> {
        match self.shape.last()? {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        }
    }
}

/// A weight matrix or vector in the GGUF: `rows` × `cols`, each row `cols` contiguous weights.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weight {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
}

/// Rotary position embedding: pair i of each head turns by
/// `pos · freq_scale · base^(−2i / n_rot)`; `mode` says which dimensions pair up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rope {
    pub mode: RopeMode,
    pub head_dim: usize,
    pub n_rot: usize,
    pub base: f32,
    pub freq_scale: f32,
}

/// One KV-cache tensor (the K or V of one layer): state that lives across steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheDecl {
    pub name: String,
    pub layer: usize,
    /// Values per position (`n_head_kv × head_dim`).
    pub row_len: usize,
    /// Keys further than this from the query are never read (sliding-window layers).
    pub window: Option<usize>,
    /// The rotation applied to rows before they were stored (keys), which moving
    /// them to other positions must redo.
    pub rotary: Option<Rope>,
}

/// The operations of the canonical (unfused) graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The step's token ids, `i32[T]`.
    TokenIds,
    /// Rows of an embedding table, dequantised: `[T] → [T, cols]`.
    Embed {
        table: Weight,
    },
    /// `x · factor`.
    Scale {
        factor: f32,
    },
    /// RMS normalisation of every `group` consecutive values (a row, or one head).
    RmsNorm {
        eps: f32,
        group: usize,
    },
    /// `x · w`, the weight vector repeated along the row.
    MulWeight {
        weight: Weight,
    },
    /// `x · Wᵀ`: `[T, cols] → [T, rows]`, the weight read in its stored type.
    MatMul {
        weight: Weight,
    },
    /// Rotary position embedding of each head at positions `P .. P+T`.
    Rope(Rope),
    /// Stores this step's rows at positions `P .. P+T` of a cache and yields the
    /// cache's first `P+T` rows: `[T, row_len] → [P+T, row_len]`.
    CacheWrite {
        cache: usize,
    },
    /// Scaled dot products of each query head with its key head:
    /// `q [T, H·d], k [P+T, Hkv·d] → [H, T, P+T]`.
    AttnScores {
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        scale: f32,
    },
    /// Causal mask (and sliding window): scores of keys the query may not see become −∞.
    AttnMask {
        window: Option<usize>,
    },
    /// Softmax over the last dimension.
    Softmax,
    /// Probability-weighted sum of value rows: `p [H, T, P+T], v [P+T, Hkv·d] → [T, H·d]`.
    AttnMix {
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
    },
    Add,
    Mul,
    Silu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// The last row: `[T, n] → [1, n]`.
    LastRow,
}

impl Op {
    /// Short name, as the text dump prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::TokenIds => "token_ids",
            Op::Embed { .. } => "embed",
            Op::Scale { .. } => "scale",
            Op::RmsNorm { .. } => "rms_norm",
            Op::MulWeight { .. } => "mul_weight",
            Op::MatMul { .. } => "matmul",
            Op::Rope { .. } => "rope",
            Op::CacheWrite { .. } => "cache_write",
            Op::AttnScores { .. } => "attn_scores",
            Op::AttnMask { .. } => "attn_mask",
            Op::Softmax => "softmax",
            Op::AttnMix { .. } => "attn_mix",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Silu => "silu",
            Op::GeluTanh => "gelu_tanh",
            Op::LastRow => "last_row",
        }
    }

    /// The weight this op reads, if any.
    pub fn weight(&self) -> Option<&Weight> {
        match self {
            Op::Embed { table: w } | Op::MulWeight { weight: w } | Op::MatMul { weight: w } => {
                Some(w)
            }
            _ => None,
        }
    }
}

/// A node: an op, its output type, and a label naming its place in the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub ty: TensorType,
    /// Where in the model: `blk.3.attn_q`, `output_norm`, …
    pub label: String,
}
