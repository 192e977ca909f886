//! The meaning of every op, written once: these CPU kernels are the reference the
//! fused graph and every GPU kernel are tested against. Activations are f32,
//! row-major; a "row" is one token's vector.

use rayon::prelude::*;

use super::vec_dot::dot_row;
use crate::gguf::dequant::dequantize;
use crate::gguf::GgmlType;
use crate::graph::{Cols, Rope};
use crate::model::RopeMode;
use crate::runtime::{round_to_int8, DecodeInput};

/// Dequantises one row of weights (whole blocks) into `out`, which must fit exactly.
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32]) {
    dequantize(ty, row, out).expect("row lengths come from the validated tensor table");
}

/// Bytes of one row of `cols` weights of type `ty`.
pub fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    cols / ty.block_size() * ty.block_bytes()
}

/// Copies (dequantised) rows `ids` of a `[rows, cols]` table into `out` (`[ids.len(), cols]`).
pub fn embed(table: &[u8], ty: GgmlType, cols: usize, ids: &[usize], out: &mut [f32]) {
    let rb = row_bytes(ty, cols);
    for (&id, dst) in ids.iter().zip(out.chunks_exact_mut(cols)) {
        dequantize_row(ty, &table[id * rb..(id + 1) * rb], dst);
    }
}

pub fn scale(x: &mut [f32], factor: f32) {
    x.iter_mut().for_each(|v| *v *= factor);
}

/// `x / sqrt(mean(x²) + eps)` over each group of `group` values.
pub fn rms_norm(x: &mut [f32], group: usize, eps: f32) {
    for g in x.chunks_exact_mut(group) {
        let inv = inverse_rms(g, eps);
        g.iter_mut().for_each(|v| *v *= inv);
    }
}

/// 1 / √(mean(x²) + eps): what RMS-norm multiplies `x` by.
pub fn inverse_rms(x: &[f32], eps: f32) -> f32 {
    let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (mean_sq + eps).sqrt()
}

/// `x · w`, `w` repeated along each row.
pub fn mul_weight(x: &mut [f32], w: &[f32]) {
    for chunk in x.chunks_exact_mut(w.len()) {
        chunk.iter_mut().zip(w).for_each(|(v, w)| *v *= w);
    }
}

/// Dot product with eight independent accumulators, so that it vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out[t, r] = x[t, :] · W[r, :]` for a `[rows, cols]` weight in its stored type,
/// rows in parallel. One token (decoding) takes each row's dot product straight from
/// the quantised blocks; several tokens dequantise each row once into a row-sized
/// buffer and reuse it. Never the whole matrix. `input` says how x is read.
pub fn matmul(
    x: &[f32],
    (weight, ty): (&[u8], GgmlType),
    (rows, cols): (usize, usize),
    input: DecodeInput,
    out: &mut [f32],
) {
    const ROWS_PER_TASK: usize = 64;
    let tokens = x.len() / cols;
    let rb = row_bytes(ty, cols);
    let mut rounded;
    let x = match input {
        DecodeInput::F32 => x,
        DecodeInput::Int8 => {
            rounded = x.to_vec();
            round_to_int8(&mut rounded);
            &rounded
        }
    };
    if tokens == 1 {
        out.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(chunk, dst)| {
                for (i, v) in dst.iter_mut().enumerate() {
                    let r = chunk * ROWS_PER_TASK + i;
                    *v = dot_row(ty, &weight[r * rb..(r + 1) * rb], x);
                }
            });
        return;
    }
    // Each task fills its rows' columns of the output, transposed back after.
    let mut by_row = vec![0f32; rows * tokens];
    by_row
        .par_chunks_mut(tokens * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, dst)| {
            let mut w = vec![0f32; cols];
            for (i, col) in dst.chunks_exact_mut(tokens).enumerate() {
                let r = chunk * ROWS_PER_TASK + i;
                dequantize_row(ty, &weight[r * rb..(r + 1) * rb], &mut w);
                for (t, v) in col.iter_mut().enumerate() {
                    *v = dot(&x[t * cols..(t + 1) * cols], &w);
                }
            }
        });
    for (r, col) in by_row.chunks_exact(tokens).enumerate() {
        for (t, v) in col.iter().enumerate() {
            out[t * rows + r] = *v;
        }
    }
}

/// Rotates each head of each row by its position `first_pos + t` (see [`Rope`]).
/// A negative position turns back (the context shift re-positions cached keys).
pub fn rope(x: &mut [f32], row_len: usize, first_pos: i64, rope: &Rope) {
    let half = rope.n_rot / 2;
    let inv_freq = rope.inv_freq();
    for (t, row) in x.chunks_exact_mut(row_len).enumerate() {
        let pos = (first_pos + t as i64) as f32 * rope.freq_scale;
        let (sin, cos): (Vec<f32>, Vec<f32>) = inv_freq.iter().map(|f| (pos * f).sin_cos()).unzip();
        for head in row.chunks_exact_mut(rope.head_dim) {
            for i in 0..half {
                let (a, b) = match rope.mode {
                    RopeMode::Adjacent => (2 * i, 2 * i + 1),
                    RopeMode::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Head shapes of attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

impl Heads {
    /// Query head `h` reads key/value head `h / (n_head / n_head_kv)`: contiguous groups.
    fn kv_head(&self, h: usize) -> usize {
        h / (self.n_head / self.n_head_kv)
    }
}

/// `scores[h, t, j] = scale · q[t, head h] · k[j, kv head of h]`: `[H, T, ctx]`.
pub fn attn_scores(q: &[f32], k: &[f32], heads: Heads, scale: f32, out: &mut [f32]) {
    let Heads {
        n_head,
        n_head_kv,
        head_dim,
    } = heads;
    let (q_len, k_len) = (n_head * head_dim, n_head_kv * head_dim);
    let tokens = q.len() / q_len;
    let ctx = k.len() / k_len;
    out.par_chunks_mut(tokens * ctx)
        .enumerate()
        .for_each(|(h, per_head)| {
            let kh = heads.kv_head(h);
            for (t, row) in per_head.chunks_exact_mut(ctx).enumerate() {
                let qv = &q[t * q_len + h * head_dim..][..head_dim];
                for (j, s) in row.iter_mut().enumerate() {
                    let kv = &k[j * k_len + kh * head_dim..][..head_dim];
                    *s = scale * dot(qv, kv);
                }
            }
        });
}

/// Sets to −∞ the scores of keys a query may not see: those after it, and with a
/// window, those `window` or more positions before it. Query `t` sits at `past + t`.
pub fn attn_mask(scores: &mut [f32], tokens: usize, past: usize, window: Option<usize>) {
    let ctx = past + tokens;
    for (i, row) in scores.chunks_exact_mut(ctx).enumerate() {
        let q_pos = past + i % tokens;
        for (k_pos, s) in row.iter_mut().enumerate() {
            let future = k_pos > q_pos;
            let outside = window.is_some_and(|w| q_pos - k_pos.min(q_pos) >= w);
            if future || outside {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// Softmax of each row of `row_len` values.
pub fn softmax(x: &mut [f32], row_len: usize) {
    for row in x.chunks_exact_mut(row_len) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        row.iter_mut().for_each(|v| *v /= sum);
    }
}

/// `out[t, head h] = Σ_j p[h, t, j] · v[j, kv head of h]`: `[T, H·d]`.
pub fn attn_mix(p: &[f32], v: &[f32], heads: Heads, out: &mut [f32]) {
    let Heads {
        n_head,
        n_head_kv,
        head_dim,
    } = heads;
    let (q_len, v_len) = (n_head * head_dim, n_head_kv * head_dim);
    let tokens = out.len() / q_len;
    let ctx = v.len() / v_len;
    out.par_chunks_mut(q_len).enumerate().for_each(|(t, row)| {
        for (h, dst) in row.chunks_exact_mut(head_dim).enumerate() {
            dst.fill(0.0);
            let kh = heads.kv_head(h);
            let probs = &p[(h * tokens + t) * ctx..][..ctx];
            for (j, &pj) in probs.iter().enumerate() {
                if pj != 0.0 {
                    let vr = &v[j * v_len + kh * head_dim..][..head_dim];
                    dst.iter_mut().zip(vr).for_each(|(d, x)| *d += pj * x);
                }
            }
        }
    });
}

pub fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

pub fn mul(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a *= b);
}

pub fn silu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp());
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(x: &mut [f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    x.iter_mut().for_each(|v| {
        *v = 0.5 * *v * (1.0 + (SQRT_2_OVER_PI * (*v + 0.044715 * *v * *v * *v)).tanh())
    });
}

/// Columns `cols` of each `row_len`-long row of `x`, as rows of `cols.len`.
pub fn columns(x: &[f32], row_len: usize, cols: Cols) -> Vec<f32> {
    x.chunks_exact(row_len)
        .flat_map(|row| &row[cols.start..cols.end()])
        .copied()
        .collect()
}

/// Writes rows of `cols.len` values into columns `cols` of each row of `x`.
pub fn set_columns(x: &mut [f32], row_len: usize, cols: Cols, values: &[f32]) {
    for (row, v) in x
        .chunks_exact_mut(row_len)
        .zip(values.chunks_exact(cols.len))
    {
        row[cols.start..cols.end()].copy_from_slice(v);
    }
}
