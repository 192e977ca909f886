//! A one-screen summary of a GGUF model: what `rustorch-compile info` prints.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::value::{Metadata, Value};
use super::GgufHeader;

/// llama.cpp's `llama_ftype` ids and names (`general.file_type`): the quantisation mix of a file.
pub const FILE_TYPES: &[(u32, &str)] = &[
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (25, "IQ4_NL"),
    (30, "IQ4_XS"),
    (32, "BF16"),
];

pub fn file_type_name(id: u32) -> Option<&'static str> {
    FILE_TYPES.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

pub fn file_type_id(name: &str) -> Option<u32> {
    FILE_TYPES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(i, _)| *i)
}

/// The architecture hyper-parameters shown by `info`, as `<arch>.<suffix>` keys.
const HYPER_PARAMETERS: &[&str] = &[
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.key_length",
    "attention.value_length",
    "attention.layer_norm_rms_epsilon",
    "attention.sliding_window",
    "rope.dimension_count",
    "rope.freq_base",
    "rope.scaling.type",
    "rope.scaling.factor",
    "vocab_size",
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelSummary {
    pub name: Option<String>,
    pub architecture: String,
    pub gguf_version: u32,
    pub file_type: Option<String>,
    /// `<arch>.*` hyper-parameters present in the file, keyed by their suffix.
    pub hyper_parameters: BTreeMap<String, serde_json::Value>,
    pub tokenizer_model: Option<String>,
    pub tokenizer_pre: Option<String>,
    pub vocab_size: usize,
    pub has_chat_template: bool,
    pub tensor_count: usize,
    /// Tensor count per ggml type.
    pub tensor_types: BTreeMap<String, usize>,
    pub weight_bytes: u64,
    pub file_bytes: u64,
}

fn json_of(value: &Value) -> serde_json::Value {
    match value {
        // Via the shortest decimal form, so that 1e-5f32 prints as 1e-5, not 9.99999974e-6.
        Value::F32(v) => serde_json::json!(v.to_string().parse::<f64>().ok()),
        Value::F64(v) => serde_json::json!(v),
        Value::Bool(v) => serde_json::json!(v),
        Value::String(v) => serde_json::json!(v),
        other => match other.as_i128() {
            Some(i) => serde_json::json!(i64::try_from(i).unwrap_or(i64::MAX)),
            None => serde_json::json!(other.to_string()),
        },
    }
}

fn optional_string(m: &Metadata, key: &str) -> Option<String> {
    m.get_str(key).ok().map(str::to_string)
}

impl ModelSummary {
    pub fn new(header: &GgufHeader, file_bytes: u64) -> ModelSummary {
        let m = &header.metadata;
        let architecture = m
            .get_str("general.architecture")
            .unwrap_or("(none)")
            .to_string();
        let hyper_parameters = HYPER_PARAMETERS
            .iter()
            .filter_map(|suffix| {
                let value = m.get(&format!("{architecture}.{suffix}"))?;
                Some((suffix.to_string(), json_of(value)))
            })
            .collect();
        let mut tensor_types = BTreeMap::new();
        for t in &header.tensors {
            *tensor_types.entry(t.ty.name().to_string()).or_insert(0) += 1;
        }
        ModelSummary {
            name: optional_string(m, "general.name"),
            gguf_version: header.version,
            file_type: m.get_u32("general.file_type").ok().map(|id| {
                file_type_name(id).map_or_else(|| format!("unknown ({id})"), str::to_string)
            }),
            hyper_parameters,
            tokenizer_model: optional_string(m, "tokenizer.ggml.model"),
            tokenizer_pre: optional_string(m, "tokenizer.ggml.pre"),
            vocab_size: m.get_array("tokenizer.ggml.tokens").map_or(0, |a| a.len()),
            has_chat_template: m.contains("tokenizer.chat_template"),
            tensor_count: header.tensors.len(),
            tensor_types,
            weight_bytes: header.weight_bytes(),
            file_bytes,
            architecture,
        }
    }
}

/// Bytes as "4.37 GB (4.07 GiB)".
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB ({:.2} GiB)", b / 1e9, b / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MB ({:.1} MiB)", b / 1e6, b / (1u64 << 20) as f64)
    }
}

impl fmt::Display for ModelSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
        writeln!(f, "name:           {}", or_none(&self.name))?;
        writeln!(f, "architecture:   {}", self.architecture)?;
        writeln!(f, "file type:      {}", or_none(&self.file_type))?;
        writeln!(f, "gguf version:   {}", self.gguf_version)?;
        for (key, value) in &self.hyper_parameters {
            writeln!(f, "  {key:<34} {value}")?;
        }
        writeln!(
            f,
            "tokenizer:      {} (pre: {}), vocabulary {}",
            or_none(&self.tokenizer_model),
            or_none(&self.tokenizer_pre),
            self.vocab_size
        )?;
        writeln!(
            f,
            "chat template:  {}",
            if self.has_chat_template { "yes" } else { "no" }
        )?;
        let types: Vec<String> = self
            .tensor_types
            .iter()
            .map(|(ty, n)| format!("{n} {ty}"))
            .collect();
        writeln!(
            f,
            "tensors:        {} ({})",
            self.tensor_count,
            types.join(", ")
        )?;
        writeln!(f, "weight bytes:   {}", human_bytes(self.weight_bytes))?;
        write!(f, "file bytes:     {}", human_bytes(self.file_bytes))
    }
}
