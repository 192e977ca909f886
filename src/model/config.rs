//! `ModelConfig::from_gguf`: the hyper-parameters of a model, read from its metadata
//! and checked against its tensor table. Semantics follow llama.cpp
//! (`src/llama-model.cpp`, `src/llama-hparams.cpp`, `src/models/*.cpp`).

use crate::gguf::{GgmlType, GgufHeader, Metadata, MetadataError, TensorInfo};

/// The architectures rustorch builds graphs for.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "gemma3"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Architecture {
    /// Llama 2/3, Mistral, TinyLlama, SmolLM.
    Llama,
    Gemma3,
}

/// How RoPE pairs the dimensions it rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RopeMode {
    /// Adjacent pairs (2i, 2i+1): llama.cpp's `LLAMA_ROPE_TYPE_NORM`.
    Adjacent,
    /// Halves (i, i + n_rot/2): llama.cpp's `LLAMA_ROPE_TYPE_NEOX`.
    Halves,
}

/// The feed-forward activation applied to the gate projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation.
    GeluTanh,
}

/// Per-layer attention settings (Gemma 3 alternates sliding and global layers).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerAttention {
    pub rope_base: f32,
    /// Keys at distance ≥ window from the query are masked; `None` = global.
    pub window: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_vocab: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    pub rope_mode: RopeMode,
    /// Dimensions of each head that RoPE rotates.
    pub n_rot: usize,
    /// Positions are multiplied by this (linear RoPE scaling: 1 / factor).
    pub rope_freq_scale: f32,
    pub layers: Vec<LayerAttention>,
    pub activation: Activation,
    /// Embeddings are multiplied by this (Gemma: √n_embd).
    pub embedding_scale: Option<f32>,
    /// Scale applied to Q before attention (the attention kernel itself then uses 1).
    pub attention_scale: f32,
    /// Gemma 3: per-head RMSNorm of Q and K before RoPE.
    pub qk_norm: bool,
    /// Gemma 3: RMSNorm of the attention and FFN outputs before their residual adds.
    pub post_norms: bool,
    /// Name of the LM head: `output.weight`, or `token_embd.weight` when tied.
    pub output_weight: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("architecture `{0}` is not supported; supported: {list}", list = SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("{0}")]
    Invalid(String),
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        found: Vec<u64>,
        expected: Vec<u64>,
    },
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// Rotary base of Gemma 3's sliding-window layers when the file does not say.
const GEMMA3_SWA_ROPE_BASE: f32 = 10_000.0;
/// Gemma 3 puts one global layer after every five sliding ones.
const GEMMA3_SWA_PERIOD: usize = 6;

impl ModelConfig {
    pub fn from_gguf(header: &GgufHeader) -> Result<ModelConfig, ConfigError> {
        let m = &header.metadata;
        let arch_name = m.get_str("general.architecture")?;
        let architecture = match arch_name {
            "llama" => Architecture::Llama,
            "gemma3" => Architecture::Gemma3,
            other => return Err(ConfigError::UnsupportedArchitecture(other.to_string())),
        };
        let key = |suffix: &str| format!("{arch_name}.{suffix}");
        let positive = |suffix: &str| -> Result<usize, ConfigError> {
            let k = key(suffix);
            match m.get_usize(&k)? {
                0 => Err(invalid(format!("metadata key `{k}` is 0"))),
                n => Ok(n),
            }
        };
        let n_layer = positive("block_count")?;
        let n_embd = positive("embedding_length")?;
        let n_ff = positive("feed_forward_length")?;
        let n_head = positive("attention.head_count")?;
        let n_head_kv = match m.optional(&key("attention.head_count_kv"), Metadata::get_usize)? {
            Some(0) => {
                return Err(invalid(format!(
                    "`{}` is 0",
                    key("attention.head_count_kv")
                )))
            }
            Some(n) => n,
            None => n_head,
        };
        if n_head % n_head_kv != 0 {
            return Err(invalid(format!(
                "{n_head} query heads cannot be grouped over {n_head_kv} key/value heads"
            )));
        }
        let head_dim = match m.optional(&key("attention.key_length"), Metadata::get_usize)? {
            Some(n) => n,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(invalid(format!(
                    "embedding {n_embd} is not divisible by {n_head} heads"
                )))
            }
        };
        if let Some(v) = m.optional(&key("attention.value_length"), Metadata::get_usize)? {
            if v != head_dim {
                return Err(invalid(format!(
                    "value length {v} differs from key length {head_dim}"
                )));
            }
        }
        let n_rot = m
            .optional(&key("rope.dimension_count"), Metadata::get_usize)?
            .unwrap_or(head_dim);
        if n_rot == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return Err(invalid(format!(
                "rope dimension count {n_rot} does not fit head size {head_dim}"
            )));
        }
        let rope_base = m
            .optional(&key("rope.freq_base"), Metadata::get_f32)?
            .unwrap_or(10_000.0);
        let rope_freq_scale = rope_scaling(m, &key)?;
        if header.tensor("rope_freqs.weight").is_some() {
            return Err(invalid(
                "per-dimension RoPE factors (`rope_freqs.weight`) are not supported yet",
            ));
        }
        let rms_eps = m.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        let context_length = positive("context_length")?;
        let n_vocab = m.get_array("tokenizer.ggml.tokens")?.len();

        let output_weight = if header.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        }
        .to_string();

        // The llama family; other architectures change what differs.
        let llama = ModelConfig {
            architecture,
            rope_mode: RopeMode::Adjacent,
            layers: vec![
                LayerAttention {
                    rope_base,
                    window: None
                };
                n_layer
            ],
            activation: Activation::Silu,
            embedding_scale: None,
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            qk_norm: false,
            post_norms: false,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_vocab,
            context_length,
            rms_eps,
            n_rot,
            rope_freq_scale,
            output_weight,
        };
        let config = match architecture {
            Architecture::Llama => llama,
            Architecture::Gemma3 => {
                let window = m.optional(&key("attention.sliding_window"), Metadata::get_usize)?;
                let swa_base = m
                    .optional(&key("rope.freq_base_swa"), Metadata::get_f32)?
                    .unwrap_or(GEMMA3_SWA_ROPE_BASE);
                let layers = (0..n_layer)
                    .map(|il| match window {
                        Some(w) if w > 0 && il % GEMMA3_SWA_PERIOD < GEMMA3_SWA_PERIOD - 1 => {
                            LayerAttention {
                                rope_base: swa_base,
                                window: Some(w),
                            }
                        }
                        _ => LayerAttention {
                            rope_base,
                            window: None,
                        },
                    })
                    .collect();
                if m.contains(&key("final_logit_softcapping")) {
                    return Err(invalid("final logit soft-capping is not supported yet"));
                }
                ModelConfig {
                    rope_mode: RopeMode::Halves,
                    layers,
                    activation: Activation::GeluTanh,
                    embedding_scale: Some((n_embd as f32).sqrt()),
                    qk_norm: true,
                    post_norms: true,
                    ..llama
                }
            }
        };
        config.check_tensors(header)?;
        Ok(config)
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Every weight the graph reads, with its ggml-order dims (`[columns, rows]`).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (e, ff, v) = (self.n_embd as u64, self.n_ff as u64, self.n_vocab as u64);
        let (q, kv, hd) = (
            self.q_dim() as u64,
            self.kv_dim() as u64,
            self.head_dim as u64,
        );
        let mut out = vec![
            ("token_embd.weight".to_string(), vec![e, v]),
            ("output_norm.weight".to_string(), vec![e]),
        ];
        if self.output_weight == "output.weight" {
            out.push(("output.weight".to_string(), vec![e, v]));
        }
        for l in 0..self.n_layer {
            let mut add =
                |name: &str, dims: Vec<u64>| out.push((format!("blk.{l}.{name}.weight"), dims));
            add("attn_norm", vec![e]);
            add("attn_q", vec![e, q]);
            add("attn_k", vec![e, kv]);
            add("attn_v", vec![e, kv]);
            add("attn_output", vec![q, e]);
            add("ffn_norm", vec![e]);
            add("ffn_gate", vec![e, ff]);
            add("ffn_up", vec![e, ff]);
            add("ffn_down", vec![ff, e]);
            if self.qk_norm {
                add("attn_q_norm", vec![hd]);
                add("attn_k_norm", vec![hd]);
            }
            if self.post_norms {
                add("post_attention_norm", vec![e]);
                add("post_ffw_norm", vec![e]);
            }
        }
        out
    }

    fn check_tensors(&self, header: &GgufHeader) -> Result<(), ConfigError> {
        for (name, dims) in self.expected_tensors() {
            let info: &TensorInfo = header
                .tensor(&name)
                .ok_or_else(|| ConfigError::MissingTensor(name.clone()))?;
            if info.dims != dims {
                return Err(ConfigError::WrongShape {
                    name,
                    found: info.dims.clone(),
                    expected: dims,
                });
            }
            if dims.len() == 1 && info.ty != GgmlType::F32 {
                return Err(invalid(format!(
                    "norm weight `{name}` is {}, expected F32",
                    info.ty
                )));
            }
        }
        Ok(())
    }
}

/// Linear RoPE scaling from `rope.scaling.*` (llama.cpp: `freq_scale = 1 / factor`).
fn rope_scaling(m: &Metadata, key: &dyn Fn(&str) -> String) -> Result<f32, ConfigError> {
    let kind_key = key("rope.scaling.type");
    let kind = if m.contains(&kind_key) {
        Some(m.get_str(&kind_key)?)
    } else {
        None
    };
    let factor = m.optional(&key("rope.scaling.factor"), Metadata::get_f32)?;
    match (kind, factor) {
        (None | Some("none"), _) | (_, None) => Ok(1.0),
        (Some("linear"), Some(f)) if f > 0.0 => Ok(1.0 / f),
        (Some(kind), Some(f)) => Err(invalid(format!(
            "RoPE scaling `{kind}` with factor {f} is not supported (supported: none, linear)"
        ))),
    }
}
