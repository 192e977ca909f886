//! Llama 2/3, Mistral, TinyLlama, SmolLM: pre-norm blocks, RoPE on Q and K,
//! grouped-query attention, SiLU-gated FFN.

use super::builder::{Builder, LogitRows};
use super::{Graph, Op};
use crate::gguf::GgufHeader;
use crate::model::ModelConfig;

pub(super) fn build(config: &ModelConfig, header: &GgufHeader, logits: LogitRows) -> Graph {
    let mut b = Builder::new(config, header);
    let mut x = b.embed();
    for layer in 0..config.n_layer {
        let p = format!("blk.{layer}");

        let h = b.rms_norm(x, &format!("{p}.attn_norm"));
        let q = b.linear(h, &format!("{p}.attn_q"));
        let k = b.linear(h, &format!("{p}.attn_k"));
        let v = b.linear(h, &format!("{p}.attn_v"));
        let q = b.rope(q, layer, &format!("{p}.attn_q.rope"));
        let k = b.rope(k, layer, &format!("{p}.attn_k.rope"));
        let attn = b.attention(layer, q, k, v, config.attention_scale);
        let attn = b.linear(attn, &format!("{p}.attn_output"));
        x = b.binary(Op::Add, x, attn, &format!("{p}.attn_residual"));

        let h = b.rms_norm(x, &format!("{p}.ffn_norm"));
        let ffn = b.gated_ffn(h, layer);
        x = b.binary(Op::Add, x, ffn, &format!("{p}.ffn_residual"));
    }
    b.logits(x, logits)
}
