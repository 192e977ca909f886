//! The graph IR: ops with typed outputs over symbolic dims, weights as references
//! into the GGUF, and the KV cache as explicit state.
//!
//! Every op's meaning is written once, in the CPU interpreter
//! (`runtime::cpu::kernels`); this file says only what each op takes and gives.

use serde::{Deserialize, Serialize};

use crate::gguf::GgmlType;
use crate::model::{Activation, RopeMode};

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

impl Rope {
    /// `base^(−2i / n_rot)` for each pair i, in f32: the one table both the CPU and
    /// the GPU kernels multiply positions by, so that their angles agree to the bit.
    pub fn inv_freq(&self) -> Vec<f32> {
        (0..self.n_rot / 2)
            .map(|i| self.base.powf(-2.0 * i as f32 / self.n_rot as f32))
            .collect()
    }
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
    /// Only the last `window` positions are kept, in a ring (slot = position mod
    /// window). Set by the attention pass: the fused [`Op::Attention`] reads only
    /// the keys its window lets a query see, where the canonical
    /// [`Op::CacheWrite`] yields every cached row.
    #[serde(default)]
    pub ring: bool,
}

impl CacheDecl {
    /// Positions this cache stores for a context of `capacity` positions.
    pub fn positions(&self, capacity: usize) -> usize {
        match self.window {
            Some(w) if self.ring => w.min(capacity),
            _ => capacity,
        }
    }
}

/// RMSNorm (with its weight) applied to every input row before a [`Op::Linear`]
/// multiplies it: `MulWeight{weight}(RmsNorm{eps, group: cols}(x))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormPrologue {
    pub eps: f32,
    pub weight: Weight,
}

/// A column range `start .. start + len` of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cols {
    pub start: usize,
    pub len: usize,
}

impl Cols {
    pub fn end(&self) -> usize {
        self.start + self.len
    }
}

/// One step applied to a [`Op::Linear`]'s output rows while they are still in
/// registers, in order. Each names the canonical op it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Epilogue {
    /// `MulWeight{weight}(RmsNorm{eps, group}(·))` of columns `cols` (Gemma's per-head Q/K norm).
    Norm {
        cols: Cols,
        eps: f32,
        group: usize,
        weight: Weight,
    },
    /// `Rope(rope)` of columns `cols`.
    Rope { cols: Cols, rope: Rope },
    /// `Scale{factor}` of columns `cols`.
    Scale { cols: Cols, factor: f32 },
    /// `Mul(act(first half), second half)`: the output keeps half the columns
    /// (`Silu` or `GeluTanh` of the gate projection times the up projection).
    Gated { act: Activation },
    /// `Add(residual, ·)` with the residual stream, the node's input 1.
    Residual,
}

/// The operations of the canonical (unfused) graph, then the fused ops the
/// compiler's passes make of them (each documented by the canonical ops it replaces).
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
    /// The last row: `[T, n] → [1, n]`. A view: no dispatch, no buffer of its own.
    LastRow,

    // ---- fused ops (made by `compiler::passes`) ----
    /// `MulWeight{weight}(RmsNorm{eps, group}(x))`, then `Add(input 1, ·)` when
    /// `residual` (Gemma's post-norms before the residual add).
    RmsNormMul {
        eps: f32,
        group: usize,
        weight: Weight,
        residual: bool,
    },
    /// One dispatch of quantised matmuls over one input: `prologue` (if any) normalises
    /// each input row, then the row is multiplied by every weight, the outputs
    /// concatenated along the row (`[T, cols] → [T, Σ rows]`, each weight dequantised
    /// in registers), then the `epilogue` steps run in order.
    Linear {
        weights: Vec<Weight>,
        prologue: Option<NormPrologue>,
        epilogue: Vec<Epilogue>,
    },
    /// A column range of the input rows: `[T, n] → [T, cols.len]`. A view (kernels
    /// read it with the source's row stride): no dispatch, no buffer of its own.
    Columns {
        cols: Cols,
    },
    /// Causal self-attention in one dispatch: `CacheWrite` of this step's keys
    /// (input 1) and values (input 2) into caches `k_cache`/`v_cache`, then
    /// `AttnMix(Softmax(AttnMask{window}(AttnScores(q = input 0, keys))), values)`.
    /// Past rows are read from the caches; this step's own rows are used as the
    /// cache would return them (rounded to its storage type) and stored after, so a
    /// sliding-window cache needs only a ring of `window` positions. (A GPU kernel
    /// may store during a decode step, `T = 1`, whose slot holds a key no query
    /// sees; a prefill step must store after every query has read the ring.)
    Attention {
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        scale: f32,
        window: Option<usize>,
        k_cache: usize,
        v_cache: usize,
    },
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
            Op::RmsNormMul { .. } => "rms_norm_mul",
            Op::Linear { .. } => "linear",
            Op::Columns { .. } => "columns",
            Op::Attention { .. } => "attention",
        }
    }

    /// How many inputs the op reads.
    pub fn arity(&self) -> usize {
        match self {
            Op::TokenIds => 0,
            Op::AttnScores { .. } | Op::AttnMix { .. } | Op::Add | Op::Mul => 2,
            Op::Attention { .. } => 3,
            Op::RmsNormMul { residual, .. } => 1 + usize::from(*residual),
            Op::Linear { epilogue, .. } => 1 + usize::from(epilogue.contains(&Epilogue::Residual)),
            _ => 1,
        }
    }

    /// Whether the op only reinterprets its input's buffer (no kernel, no buffer).
    pub fn is_view(&self) -> bool {
        matches!(self, Op::LastRow | Op::Columns { .. })
    }

    /// Whether the op is one kernel launch per step. Views are not, and neither
    /// are the token ids, which the host uploads.
    pub fn is_dispatch(&self) -> bool {
        !self.is_view() && !matches!(self, Op::TokenIds)
    }

    /// Every weight this op reads.
    pub fn weights(&self) -> Vec<&Weight> {
        match self {
            Op::Embed { table: w }
            | Op::MulWeight { weight: w }
            | Op::MatMul { weight: w }
            | Op::RmsNormMul { weight: w, .. } => vec![w],
            Op::Linear {
                weights,
                prologue,
                epilogue,
            } => {
                let norms = epilogue.iter().filter_map(|step| match step {
                    Epilogue::Norm { weight, .. } => Some(weight),
                    _ => None,
                });
                weights
                    .iter()
                    .chain(prologue.iter().map(|p| &p.weight))
                    .chain(norms)
                    .collect()
            }
            _ => vec![],
        }
    }

    /// The weight vectors this op multiplies element-wise (norm weights), which the
    /// CPU interpreter keeps as f32.
    pub fn vectors(&self) -> Vec<&Weight> {
        match self {
            Op::Linear { weights, .. } => self
                .weights()
                .into_iter()
                .filter(|w| !weights.contains(w))
                .collect(),
            Op::MulWeight { weight } | Op::RmsNormMul { weight, .. } => vec![weight],
            _ => vec![],
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
    /// For a fused node, the canonical nodes it replaced (`op label`, in schedule
    /// order); empty for canonical nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

impl Node {
    /// The canonical nodes this node stands for: itself, or what it replaced.
    pub fn origin(&self) -> Vec<String> {
        if self.replaces.is_empty() {
            vec![format!("{} {}", self.op.name(), self.label)]
        } else {
            self.replaces.clone()
        }
    }

    /// Records that this node now also does the work of `other`.
    pub fn absorb(&mut self, other: &Node) {
        let mut replaces = self.origin();
        replaces.extend(other.origin());
        self.replaces = replaces;
    }
}
