//! The fused ops, each written as the canonical kernels it stands for, applied in
//! the same order to the same values — so the fused graph computes exactly what
//! the canonical one does.

use super::kernels::{self, Heads};
use crate::graph::{Cols, Epilogue, NormPrologue, Step, Weight};
use crate::model::Activation;
use crate::runtime::{DecodeInput, KvCache};

/// What a fused op reads besides its inputs: weight bytes and norm vectors.
pub trait Weights {
    fn bytes(&self, name: &str) -> &[u8];
    fn vector(&self, name: &str) -> &[f32];
    /// How a decode step's matmuls read x.
    fn decode_input(&self) -> DecodeInput;
}

/// `MulWeight(RmsNorm(x))`, then `+ residual` when given.
pub fn rms_norm_mul(
    x: &[f32],
    group: usize,
    eps: f32,
    weight: &[f32],
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let mut x = x.to_vec();
    kernels::rms_norm(&mut x, group, eps);
    kernels::mul_weight(&mut x, weight);
    if let Some(r) = residual {
        kernels::add(&mut x, r);
    }
    x
}

/// Runs `f` on columns `cols` of every row of `x` as if they were rows of their own.
fn on_columns(x: &mut [f32], row_len: usize, cols: Cols, f: impl FnOnce(&mut [f32])) {
    if cols.len == row_len {
        return f(x);
    }
    let mut part = kernels::columns(x, row_len, cols);
    f(&mut part);
    kernels::set_columns(x, row_len, cols, &part);
}

fn matmul(x: &[f32], w: &Weight, step: Step, source: &impl Weights) -> Vec<f32> {
    let mut out = vec![0f32; x.len() / w.cols * w.rows];
    let weight = (source.bytes(&w.name), w.ty);
    let input = source.decode_input().in_step(step.tokens);
    kernels::matmul(x, weight, (w.rows, w.cols), input, &mut out);
    out
}

/// `Op::Linear`: prologue norm, the matmuls side by side, then the epilogue steps.
pub fn linear(
    x: &[f32],
    residual: Option<&[f32]>,
    weights: &[Weight],
    prologue: Option<&NormPrologue>,
    epilogue: &[Epilogue],
    step: Step,
    source: &impl Weights,
) -> Vec<f32> {
    let cols = weights[0].cols;
    // With x in 8 bits (a one-token step) x times the norm weight is what is rounded,
    // and the sums take the RMS scale after, as the GPU's decode matmul does.
    let int8 = source.decode_input().in_step(step.tokens) == DecodeInput::Int8;
    let mut rms_after = None;
    let normed;
    let x = match prologue {
        Some(p) if int8 => {
            rms_after = Some(kernels::inverse_rms(x, p.eps));
            let mut weighted = x.to_vec();
            kernels::mul_weight(&mut weighted, source.vector(&p.weight.name));
            normed = weighted;
            &normed
        }
        Some(p) => {
            normed = rms_norm_mul(x, cols, p.eps, source.vector(&p.weight.name), None);
            &normed
        }
        None => x,
    };
    let mut out = match weights {
        [w] => matmul(x, w, step, source),
        _ => {
            let total: usize = weights.iter().map(|w| w.rows).sum();
            let mut out = vec![0f32; step.tokens * total];
            let mut start = 0;
            for w in weights {
                let part = matmul(x, w, step, source);
                kernels::set_columns(&mut out, total, Cols { start, len: w.rows }, &part);
                start += w.rows;
            }
            out
        }
    };
    if let Some(scale) = rms_after {
        out.iter_mut().for_each(|v| *v *= scale);
    }
    for s in epilogue {
        let row_len = out.len() / step.tokens;
        match s {
            Epilogue::Norm {
                cols,
                eps,
                group,
                weight,
            } => on_columns(&mut out, row_len, *cols, |part| {
                kernels::rms_norm(part, *group, *eps);
                kernels::mul_weight(part, source.vector(&weight.name));
            }),
            Epilogue::Rope { cols, rope } => on_columns(&mut out, row_len, *cols, |part| {
                kernels::rope(part, cols.len, step.past as i64, rope)
            }),
            Epilogue::Scale { cols, factor } => on_columns(&mut out, row_len, *cols, |part| {
                kernels::scale(part, *factor)
            }),
            Epilogue::Gated { act } => out = gated(&out, row_len / 2, *act),
            Epilogue::Residual => {
                kernels::add(&mut out, residual.expect("the graph checked the arity"))
            }
        }
    }
    out
}

/// `Mul(act(gate), up)` over rows `[gate | up]` of `2 · half` values.
fn gated(x: &[f32], half: usize, act: Activation) -> Vec<f32> {
    let mut gate = kernels::columns(
        x,
        2 * half,
        Cols {
            start: 0,
            len: half,
        },
    );
    let up = kernels::columns(
        x,
        2 * half,
        Cols {
            start: half,
            len: half,
        },
    );
    match act {
        Activation::Silu => kernels::silu(&mut gate),
        Activation::GeluTanh => kernels::gelu_tanh(&mut gate),
    }
    kernels::mul(&mut gate, &up);
    gate
}

/// The attention settings of one `Op::Attention`.
pub struct AttentionOp {
    pub heads: Heads,
    pub scale: f32,
    pub window: Option<usize>,
    pub k_cache: usize,
    pub v_cache: usize,
}

/// `Op::Attention`: keys and values from the first position any query of this
/// step can see (`P + 1 − window`, or 0) — past ones from the caches, this step's
/// own as the cache stores them — then scores, mask, softmax and mix, then this
/// step's rows stored. Keys no query sees are never read: the canonical chain
/// gives them zero weight, so the result is the same.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    op: &AttentionOp,
    step: Step,
    kv: &mut KvCache,
) -> Vec<f32> {
    let Step { past, tokens } = step;
    let first = op.window.map_or(0, |w| (past + 1).saturating_sub(w));
    let gather = |cache: usize, rows: &[f32]| {
        let mut all = kv.read_range(cache, first, past);
        all.extend(kv.as_stored(cache, rows));
        all
    };
    let (keys, values) = (gather(op.k_cache, k), gather(op.v_cache, v));
    let seen = past + tokens - first;
    let mut probs = vec![0f32; op.heads.n_head * tokens * seen];
    kernels::attn_scores(q, &keys, op.heads, op.scale, &mut probs);
    kernels::attn_mask(&mut probs, tokens, past - first, op.window);
    kernels::softmax(&mut probs, seen);
    let mut out = vec![0f32; tokens * op.heads.n_head * op.heads.head_dim];
    kernels::attn_mix(&probs, &values, op.heads, &mut out);
    kv.write(op.k_cache, past, k);
    kv.write(op.v_cache, past, v);
    out
}
