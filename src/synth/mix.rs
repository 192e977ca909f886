//! Which ggml type each tensor gets under a file type, as llama.cpp's quantiser
//! (`llama_tensor_get_type` in `src/llama-quant.cpp`) decides it for the mixes we write.

use super::preset::{Preset, Role, TensorPlan};
use crate::gguf::{GgmlType, QK_K};

/// The file types `synth` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    F16,
    Q8_0,
    Q4_0,
    Q4KM,
}

impl Quant {
    pub const ALL: [Quant; 4] = [Quant::F16, Quant::Q8_0, Quant::Q4_0, Quant::Q4KM];

    pub fn name(self) -> &'static str {
        match self {
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q4_0 => "q4_0",
            Quant::Q4KM => "q4_k_m",
        }
    }

    pub fn from_name(name: &str) -> Option<Quant> {
        Self::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(name))
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Quant::F16 => 1,
            Quant::Q8_0 => 7,
            Quant::Q4_0 => 2,
            Quant::Q4KM => 15,
        }
    }

    fn default_type(self) -> GgmlType {
        match self {
            Quant::F16 => GgmlType::F16,
            Quant::Q8_0 => GgmlType::Q8_0,
            Quant::Q4_0 => GgmlType::Q4_0,
            Quant::Q4KM => GgmlType::Q4K,
        }
    }
}

/// llama.cpp gives more bits to the first and last eighth of the layers and to every
/// third layer in between.
fn use_more_bits(layer: u64, n_layers: u64) -> bool {
    layer < n_layers / 8
        || layer >= 7 * n_layers / 8
        // Only reached when layer ≥ n_layers / 8, so the subtraction cannot underflow.
        || (layer - n_layers / 8) % 3 == 2
}

/// A k-quant needs rows of whole 256-weight super-blocks; llama.cpp falls back to
/// a 32-block type of similar precision otherwise.
fn fall_back_if_rows_too_short(ty: GgmlType, row_len: u64) -> GgmlType {
    if row_len.is_multiple_of(QK_K as u64) {
        return ty;
    }
    match ty {
        GgmlType::Q2K | GgmlType::Q3K => GgmlType::Q4_0,
        GgmlType::IQ4XS => GgmlType::IQ4NL,
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        other => other,
    }
}

/// The type of one tensor of `preset` under `quant`.
pub fn tensor_type(preset: &Preset, quant: Quant, tensor: &TensorPlan) -> GgmlType {
    if tensor.role == Role::Norm || tensor.dims.len() == 1 {
        return GgmlType::F32;
    }
    // With a tied output, the embedding is quantised as the output matrix.
    let is_output =
        tensor.role == Role::Output || (tensor.role == Role::TokenEmbedding && preset.tied_output);
    let ty = match quant {
        Quant::F16 | Quant::Q8_0 => quant.default_type(),
        Quant::Q4_0 | Quant::Q4KM if is_output => GgmlType::Q6K,
        Quant::Q4_0 => GgmlType::Q4_0,
        Quant::Q4KM => {
            let more = |layer: Option<u64>| layer.is_some_and(|l| use_more_bits(l, preset.n_layer));
            match tensor.role {
                Role::AttnV | Role::FfnDown if more(tensor.layer) => GgmlType::Q6K,
                _ => GgmlType::Q4K,
            }
        }
    };
    fall_back_if_rows_too_short(ty, tensor.dims[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types_of(preset: &str, quant: Quant) -> Vec<(String, GgmlType)> {
        let p = Preset::find(preset).unwrap();
        p.tensors()
            .iter()
            .map(|t| (t.name.clone(), tensor_type(p, quant, t)))
            .collect()
    }

    fn count(types: &[(String, GgmlType)], ty: GgmlType) -> usize {
        types.iter().filter(|(_, t)| *t == ty).count()
    }

    #[test]
    fn gemma3_q4_k_m_matches_the_real_file() {
        // Tensor type counts of gemma-3-270m-q4_k_m.gguf, as llama.cpp quantised it.
        let types = types_of("gemma3-270m", Quant::Q4KM);
        assert_eq!(count(&types, GgmlType::F32), 109);
        assert_eq!(count(&types, GgmlType::Q5_0), 81);
        assert_eq!(count(&types, GgmlType::Q4K), 27);
        assert_eq!(count(&types, GgmlType::Q8_0), 10);
        assert_eq!(count(&types, GgmlType::Q6K), 9);
    }

    #[test]
    fn more_bits_layers_for_32_blocks() {
        let layers: Vec<u64> = (0..32).filter(|&l| use_more_bits(l, 32)).collect();
        assert_eq!(
            layers,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
    }
}
