//! Completes a prompt greedily with the library API, streaming the text.
//!
//! cargo run --release --example complete -- models/SmolLM2-135M-Instruct.Q4_1.gguf "The capital of France is"

use rustorch::runtime::{DecodeInput, KvType, Sampler, SamplerConfig};
use rustorch::text::LanguageModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(prompt)) = (args.next(), args.next()) else {
        return Err("usage: complete MODEL PROMPT".into());
    };
    let lm = LanguageModel::load(&model)?;
    let mut session = lm.model.session(Some(512), KvType::F16, DecodeInput::F32)?;
    let tokens = lm.encode_prompt(&prompt)?;
    let mut sampler = Sampler::new(SamplerConfig::greedy());
    print!("{prompt}");
    let generation = lm.generate(
        &mut session,
        &tokens,
        &mut sampler,
        &lm.options(16),
        |text| print!("{text}"),
    )?;
    println!();
    eprintln!(
        "{} tokens, stop: {:?}",
        generation.tokens.len(),
        generation.stop
    );
    Ok(())
}
