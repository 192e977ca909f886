//! Gemma 3: scaled embeddings, per-head RMSNorm of Q and K before RoPE (halves
//! pairing), Q scaled before attention, post-norms before each residual add,
//! GELU-gated FFN, and sliding-window attention on five of every six layers.

use super::builder::{Builder, LogitRows};
use super::{Graph, Op};
use crate::gguf::GgufHeader;
use crate::model::ModelConfig;

pub(super) fn build(config: &ModelConfig, header: &GgufHeader, logits: LogitRows) -> Graph {
    let mut b = Builder::new(config, header);
    let head_dim = config.head_dim;
    let mut x = b.embed();
    for layer in 0..config.n_layer {
        let p = format!("blk.{layer}");

        let h = b.rms_norm(x, &format!("{p}.attn_norm"));
        let q = b.linear(h, &format!("{p}.attn_q"));
        let k = b.linear(h, &format!("{p}.attn_k"));
        let v = b.linear(h, &format!("{p}.attn_v"));
        let q = b.rms_norm_grouped(q, &format!("{p}.attn_q_norm"), head_dim);
        let k = b.rms_norm_grouped(k, &format!("{p}.attn_k_norm"), head_dim);
        let q = b.rope(q, layer, &format!("{p}.attn_q.rope"));
        let k = b.rope(k, layer, &format!("{p}.attn_k.rope"));
        // Gemma scales Q itself; the attention kernel's own scale is 1.
        let factor = config.attention_scale;
        let q = b.unary(Op::Scale { factor }, q, &format!("{p}.attn_q.scaled"));
        let attn = b.attention(layer, q, k, v, 1.0);
        let attn = b.linear(attn, &format!("{p}.attn_output"));
        let attn = b.rms_norm(attn, &format!("{p}.post_attention_norm"));
        x = b.binary(Op::Add, x, attn, &format!("{p}.attn_residual"));

        let h = b.rms_norm(x, &format!("{p}.ffn_norm"));
        let ffn = b.gated_ffn(h, layer);
        let ffn = b.rms_norm(ffn, &format!("{p}.post_ffw_norm"));
        x = b.binary(Op::Add, x, ffn, &format!("{p}.ffn_residual"));
    }
    b.logits(x, logits)
}
