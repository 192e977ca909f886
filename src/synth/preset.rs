//! The real shapes and metadata of the architectures `synth` can write.

use crate::gguf::{GgmlType, TensorSpec};

/// Which tokenizer a preset's vocabulary imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece (`tokenizer.ggml.model = llama`) with `<unk> <s> </s>` first.
    SentencePiece,
    /// SentencePiece laid out as Gemma's: `<pad> <eos> <bos> <unk>`, turn markers at 105/106.
    GemmaSentencePiece,
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`) with the given `tokenizer.ggml.pre`.
    BytePairs { pre: &'static str },
}

/// Hyper-parameters of one model architecture at one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub display_name: &'static str,
    pub architecture: &'static str,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_ff: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub head_dim: u64,
    pub n_vocab: u64,
    pub context_length: u64,
    pub rope_freq_base: f32,
    pub rms_eps: f32,
    /// `output.weight` absent: the output projection reuses `token_embd`.
    pub tied_output: bool,
    /// Gemma 3's sliding-window size (its other extras follow from the architecture).
    pub sliding_window: Option<u64>,
    pub vocab: VocabKind,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "smollm2-135m",
        display_name: "SmolLM2 135M (synthetic)",
        architecture: "llama",
        n_layer: 30,
        n_embd: 576,
        n_ff: 1536,
        n_head: 9,
        n_head_kv: 3,
        head_dim: 64,
        n_vocab: 49152,
        context_length: 8192,
        rope_freq_base: 100_000.0,
        rms_eps: 1e-5,
        tied_output: true,
        sliding_window: None,
        vocab: VocabKind::BytePairs { pre: "smollm" },
    },
    Preset {
        name: "tinyllama-1.1b",
        display_name: "TinyLlama 1.1B (synthetic)",
        architecture: "llama",
        n_layer: 22,
        n_embd: 2048,
        n_ff: 5632,
        n_head: 32,
        n_head_kv: 4,
        head_dim: 64,
        n_vocab: 32000,
        context_length: 2048,
        rope_freq_base: 10_000.0,
        rms_eps: 1e-5,
        tied_output: false,
        sliding_window: None,
        vocab: VocabKind::SentencePiece,
    },
    Preset {
        name: "mistral-7b",
        display_name: "Mistral 7B v0.2 (synthetic)",
        architecture: "llama",
        n_layer: 32,
        n_embd: 4096,
        n_ff: 14336,
        n_head: 32,
        n_head_kv: 8,
        head_dim: 128,
        n_vocab: 32000,
        context_length: 32768,
        rope_freq_base: 1_000_000.0,
        rms_eps: 1e-5,
        tied_output: false,
        sliding_window: None,
        vocab: VocabKind::SentencePiece,
    },
    Preset {
        name: "llama3-8b",
        display_name: "Llama 3 8B (synthetic)",
        architecture: "llama",
        n_layer: 32,
        n_embd: 4096,
        n_ff: 14336,
        n_head: 32,
        n_head_kv: 8,
        head_dim: 128,
        n_vocab: 128256,
        context_length: 8192,
        rope_freq_base: 500_000.0,
        rms_eps: 1e-5,
        tied_output: false,
        sliding_window: None,
        vocab: VocabKind::BytePairs { pre: "llama-bpe" },
    },
    Preset {
        name: "gemma3-270m",
        display_name: "Gemma 3 270M (synthetic)",
        architecture: "gemma3",
        n_layer: 18,
        n_embd: 640,
        n_ff: 2048,
        n_head: 4,
        n_head_kv: 1,
        head_dim: 256,
        n_vocab: 262144,
        context_length: 32768,
        rope_freq_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied_output: true,
        sliding_window: Some(512),
        vocab: VocabKind::GemmaSentencePiece,
    },
];

/// What a tensor does, which is what the quantisation mix decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Norm,
    TokenEmbedding,
    Output,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    FfnGate,
    FfnUp,
    FfnDown,
}

/// A tensor of the model before its type is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub dims: Vec<u64>,
    pub role: Role,
    /// The block index for per-layer tensors.
    pub layer: Option<u64>,
}

impl TensorPlan {
    fn new(name: String, dims: &[u64], role: Role, layer: Option<u64>) -> TensorPlan {
        TensorPlan {
            name,
            dims: dims.to_vec(),
            role,
            layer,
        }
    }

    pub fn with_type(&self, ty: GgmlType) -> TensorSpec {
        TensorSpec::new(self.name.clone(), &self.dims, ty)
    }
}

impl Preset {
    pub fn find(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }

    pub fn names() -> Vec<&'static str> {
        PRESETS.iter().map(|p| p.name).collect()
    }

    fn is_gemma3(&self) -> bool {
        self.architecture == "gemma3"
    }

    /// Every tensor, in the order llama.cpp's converters write them, with llama.cpp's
    /// names and ggml-order dims (`[columns, rows]` for a matrix).
    pub fn tensors(&self) -> Vec<TensorPlan> {
        let (e, ff, v) = (self.n_embd, self.n_ff, self.n_vocab);
        let q = self.n_head * self.head_dim;
        let kv = self.n_head_kv * self.head_dim;
        let mut out = vec![TensorPlan::new(
            "token_embd.weight".into(),
            &[e, v],
            Role::TokenEmbedding,
            None,
        )];
        for l in 0..self.n_layer {
            let t = |name: &str, dims: &[u64], role| {
                TensorPlan::new(format!("blk.{l}.{name}.weight"), dims, role, Some(l))
            };
            out.push(t("attn_norm", &[e], Role::Norm));
            out.push(t("attn_q", &[e, q], Role::AttnQ));
            out.push(t("attn_k", &[e, kv], Role::AttnK));
            out.push(t("attn_v", &[e, kv], Role::AttnV));
            if self.is_gemma3() {
                out.push(t("attn_q_norm", &[self.head_dim], Role::Norm));
                out.push(t("attn_k_norm", &[self.head_dim], Role::Norm));
            }
            out.push(t("attn_output", &[q, e], Role::AttnOutput));
            if self.is_gemma3() {
                out.push(t("post_attention_norm", &[e], Role::Norm));
            }
            out.push(t("ffn_norm", &[e], Role::Norm));
            out.push(t("ffn_gate", &[e, ff], Role::FfnGate));
            out.push(t("ffn_up", &[e, ff], Role::FfnUp));
            out.push(t("ffn_down", &[ff, e], Role::FfnDown));
            if self.is_gemma3() {
                out.push(t("post_ffw_norm", &[e], Role::Norm));
            }
        }
        out.push(TensorPlan::new(
            "output_norm.weight".into(),
            &[e],
            Role::Norm,
            None,
        ));
        if !self.tied_output {
            out.push(TensorPlan::new(
                "output.weight".into(),
                &[e, v],
                Role::Output,
                None,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_counts_match_the_real_files() {
        // The real SmolLM2-135M and Gemma 3 270M files have 272 and 236 tensors.
        assert_eq!(Preset::find("smollm2-135m").unwrap().tensors().len(), 272);
        assert_eq!(Preset::find("gemma3-270m").unwrap().tensors().len(), 236);
        // Llama-family files with an output matrix: 9 per block + 3.
        assert_eq!(
            Preset::find("mistral-7b").unwrap().tensors().len(),
            32 * 9 + 3
        );
    }

    #[test]
    fn names_are_unique() {
        for p in PRESETS {
            let mut names: Vec<_> = p.tensors().into_iter().map(|t| t.name).collect();
            names.sort();
            let n = names.len();
            names.dedup();
            assert_eq!(n, names.len(), "{}", p.name);
        }
    }
}
