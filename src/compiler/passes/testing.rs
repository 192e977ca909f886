//! Small hand-built graphs for the passes' tests: one pre-norm transformer layer
//! written with canonical ops, as the builders would write it.

use crate::gguf::GgmlType;
use crate::graph::{CacheDecl, Dim, Graph, NodeId, Op, Rope, TensorType, Weight};
use crate::model::RopeMode;

pub fn weight(name: &str, rows: usize, cols: usize) -> Weight {
    Weight {
        name: name.into(),
        ty: if rows == 1 {
            GgmlType::F32
        } else {
            GgmlType::Q8_0
        },
        rows,
        cols,
    }
}

pub fn rows(n: usize) -> TensorType {
    TensorType::f32(&[Dim::Tokens, Dim::Fixed(n)])
}

pub const ROPE: Rope = Rope {
    mode: RopeMode::Adjacent,
    head_dim: 8,
    n_rot: 8,
    base: 10_000.0,
    freq_scale: 1.0,
};

/// Token ids and their embeddings, width `n`.
pub fn embedded(g: &mut Graph, n: usize) -> NodeId {
    let ids = g.add(
        Op::TokenIds,
        TensorType {
            dtype: crate::graph::DType::I32,
            shape: vec![Dim::Tokens],
        },
        "tokens",
        &[],
    );
    let table = weight("token_embd.weight", 64, n);
    g.add(Op::Embed { table }, rows(n), "token_embd", &[ids])
}

pub fn norm(g: &mut Graph, x: NodeId, name: &str, n: usize) -> NodeId {
    let r = g.add(
        Op::RmsNorm {
            eps: 1e-5,
            group: n,
        },
        rows(n),
        format!("{name}.rms"),
        &[x],
    );
    let weight = weight(&format!("{name}.weight"), 1, n);
    g.add(Op::MulWeight { weight }, rows(n), name, &[r])
}

pub fn linear(g: &mut Graph, x: NodeId, name: &str, out: usize, inp: usize) -> NodeId {
    let weight = weight(&format!("{name}.weight"), out, inp);
    g.add(Op::MatMul { weight }, rows(out), name, &[x])
}

/// One llama layer (width 16, two heads of 8, one KV head) and the LM head.
pub fn llama_layer() -> Graph {
    let (e, hd) = (16, 8);
    let mut g = Graph::default();
    let x = embedded(&mut g, e);
    let h = norm(&mut g, x, "blk.0.attn_norm", e);
    let q = linear(&mut g, h, "blk.0.attn_q", e, e);
    let k = linear(&mut g, h, "blk.0.attn_k", hd, e);
    let v = linear(&mut g, h, "blk.0.attn_v", hd, e);
    let q = g.add(Op::Rope(ROPE), rows(e), "blk.0.attn_q.rope", &[q]);
    let k = g.add(Op::Rope(ROPE), rows(hd), "blk.0.attn_k.rope", &[k]);
    let attn = attention(&mut g, q, k, v, None);
    let o = linear(&mut g, attn, "blk.0.attn_output", e, e);
    let x = g.add(Op::Add, rows(e), "blk.0.attn_residual", &[x, o]);
    let h = norm(&mut g, x, "blk.0.ffn_norm", e);
    let gate = linear(&mut g, h, "blk.0.ffn_gate", 32, e);
    let up = linear(&mut g, h, "blk.0.ffn_up", 32, e);
    let act = g.add(Op::Silu, rows(32), "blk.0.ffn_act", &[gate]);
    let gated = g.add(Op::Mul, rows(32), "blk.0.ffn_gated", &[act, up]);
    let down = linear(&mut g, gated, "blk.0.ffn_down", e, 32);
    let x = g.add(Op::Add, rows(e), "blk.0.ffn_residual", &[x, down]);
    let h = norm(&mut g, x, "output_norm", e);
    g.output = linear(&mut g, h, "output", 64, e);
    g
}

/// The canonical attention ops of layer 0 over two heads of 8 and one KV head.
pub fn attention(g: &mut Graph, q: NodeId, k: NodeId, v: NodeId, window: Option<usize>) -> NodeId {
    let hd = 8;
    for (name, rotary) in [("k", Some(ROPE)), ("v", None)] {
        g.caches.push(CacheDecl {
            name: format!("blk.0.cache_{name}"),
            layer: 0,
            row_len: hd,
            window,
            rotary,
            ring: false,
        });
    }
    let ctx = TensorType::f32(&[Dim::Context, Dim::Fixed(hd)]);
    let kc = g.add(
        Op::CacheWrite { cache: 0 },
        ctx.clone(),
        "blk.0.cache_k",
        &[k],
    );
    let vc = g.add(Op::CacheWrite { cache: 1 }, ctx, "blk.0.cache_v", &[v]);
    let scores_ty = TensorType::f32(&[Dim::Fixed(2), Dim::Tokens, Dim::Context]);
    let heads = (2, 1, hd);
    let s = g.add(
        Op::AttnScores {
            n_head: heads.0,
            n_head_kv: heads.1,
            head_dim: heads.2,
            scale: 0.5,
        },
        scores_ty.clone(),
        "blk.0.attn.scores",
        &[q, kc],
    );
    let m = g.add(
        Op::AttnMask { window },
        scores_ty.clone(),
        "blk.0.attn.mask",
        &[s],
    );
    let p = g.add(Op::Softmax, scores_ty, "blk.0.attn.softmax", &[m]);
    g.add(
        Op::AttnMix {
            n_head: heads.0,
            n_head_kv: heads.1,
            head_dim: heads.2,
        },
        rows(16),
        "blk.0.attn.mix",
        &[p, vc],
    )
}

/// The op names of the graph in schedule order.
pub fn op_names(g: &Graph) -> Vec<&'static str> {
    g.schedule().map(|id| g.node(id).op.name()).collect()
}

/// The graph after the pipeline's passes up to and including `last`.
pub fn after(mut g: Graph, last: &str) -> Graph {
    for pass in super::PIPELINE {
        (pass.run)(&mut g);
        g = g.compact();
        if pass.name == last {
            return g;
        }
    }
    panic!("no pass named {last}")
}
