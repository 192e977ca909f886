//! Synthetic models: GGUF files with the real tensor names, shapes, quantisation mix
//! and metadata of an architecture, random weights and a valid tokenizer, so that
//! rustorch and llama.cpp can be timed on the same bytes without the real weights.

mod mix;
mod preset;
mod random;
mod vocab;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;

pub use mix::{tensor_type, Quant};
pub use preset::{Preset, Role, TensorPlan, VocabKind, PRESETS};
pub use random::{fill_random, SplitMix64, WEIGHT_SCALE};
pub use vocab::byte_level_char;

use crate::gguf::{GgmlType, GgufWriter, TensorSpec, Value};

/// Data is generated in parallel in chunks of about this many bytes.
const CHUNK_BYTES: usize = 4 << 20;

/// The metadata and tensor table of a synthetic model, ready to be written.
pub fn model_writer(preset: &Preset, quant: Quant) -> io::Result<(GgufWriter, Vec<Role>)> {
    let mut w = GgufWriter::new();
    let arch = preset.architecture;
    let key = |suffix: &str| format!("{arch}.{suffix}");
    w.set("general.architecture", Value::String(arch.into()))
        .set("general.name", Value::String(preset.display_name.into()))
        .set("general.file_type", Value::U32(quant.file_type()))
        .set("general.quantization_version", Value::U32(2))
        .set(
            key("context_length"),
            Value::U32(preset.context_length as u32),
        )
        .set(key("embedding_length"), Value::U32(preset.n_embd as u32))
        .set(key("block_count"), Value::U32(preset.n_layer as u32))
        .set(key("feed_forward_length"), Value::U32(preset.n_ff as u32))
        .set(
            key("attention.head_count"),
            Value::U32(preset.n_head as u32),
        )
        .set(
            key("attention.head_count_kv"),
            Value::U32(preset.n_head_kv as u32),
        )
        .set(
            key("attention.layer_norm_rms_epsilon"),
            Value::F32(preset.rms_eps),
        )
        .set(key("rope.freq_base"), Value::F32(preset.rope_freq_base))
        .set(key("vocab_size"), Value::U32(preset.n_vocab as u32));
    match preset.sliding_window {
        Some(window) => {
            w.set(
                key("attention.key_length"),
                Value::U32(preset.head_dim as u32),
            )
            .set(
                key("attention.value_length"),
                Value::U32(preset.head_dim as u32),
            )
            .set(key("attention.sliding_window"), Value::U32(window as u32));
        }
        None => {
            w.set(
                key("rope.dimension_count"),
                Value::U32(preset.head_dim as u32),
            );
        }
    }
    vocab::write_tokenizer(&mut w, preset.vocab, preset.n_vocab as usize);

    let mut roles = Vec::new();
    for plan in preset.tensors() {
        let ty = tensor_type(preset, quant, &plan);
        w.add_tensor(plan.with_type(ty))?;
        roles.push(plan.role);
    }
    Ok((w, roles))
}

/// Writes a synthetic model to `path`; returns its size in bytes. The same seed
/// gives the same file.
pub fn write_model(preset: &Preset, quant: Quant, seed: u64, path: &Path) -> io::Result<u64> {
    let (writer, roles) = model_writer(preset, quant)?;
    let file = BufWriter::with_capacity(8 << 20, File::create(path)?);
    writer.write(file, |index, spec, sink| {
        write_tensor_data(spec, roles[index], seed ^ ((index as u64) << 32), sink)
    })
}

/// Streams one tensor's random data, a batch of chunks generated in parallel at a time.
fn write_tensor_data(
    spec: &TensorSpec,
    role: Role,
    seed: u64,
    sink: &mut dyn Write,
) -> io::Result<()> {
    let n_bytes = spec.n_bytes().expect("the writer validated the tensor") as usize;
    if role == Role::Norm {
        // RMSNorm gains sit near one.
        let mut rng = SplitMix64::new(seed);
        let gains: Vec<u8> = (0..spec.n_elements())
            .flat_map(|_| (1.0 + 0.1 * rng.signed_unit()).to_le_bytes())
            .collect();
        debug_assert_eq!(spec.ty, GgmlType::F32);
        return sink.write_all(&gains);
    }
    let block = spec.ty.block_bytes();
    let chunk = CHUNK_BYTES / block * block;
    let batch = chunk * rayon::current_num_threads().max(1) * 2;
    let mut buffer = vec![0u8; batch.min(n_bytes)];
    let mut done = 0;
    while done < n_bytes {
        let len = (n_bytes - done).min(buffer.len());
        let first_chunk = done / chunk;
        buffer[..len]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, out)| {
                let mut rng = SplitMix64::new(seed.wrapping_add((first_chunk + i) as u64));
                fill_random(spec.ty, out, &mut rng);
            });
        sink.write_all(&buffer[..len])?;
        done += len;
    }
    Ok(())
}
