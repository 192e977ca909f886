//! `rustorch-compile`: inspects GGUF models and writes synthetic ones.
//! Argument parsing and printing only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use rustorch::gguf::summary::{human_bytes, ModelSummary};
use rustorch::gguf::GgufFile;
use rustorch::synth::{self, Preset, Quant};

#[derive(Parser)]
#[command(
    name = "rustorch-compile",
    version,
    about = "Inspect GGUF models and write synthetic ones"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Architecture, hyper-parameters, tokenizer, tensor types and sizes of a GGUF file.
    Info {
        model: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a GGUF with a real architecture's shapes, random weights and a valid tokenizer.
    Synth {
        /// smollm2-135m, tinyllama-1.1b, mistral-7b, llama3-8b or gemma3-270m.
        #[arg(long)]
        preset: String,
        /// f16, q8_0, q4_0 or q4_k_m (llama.cpp's mix).
        #[arg(long)]
        quant: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn info(model: PathBuf, json: bool) -> Result<()> {
    let file = GgufFile::open(&model)?;
    let summary = ModelSummary::new(file.header(), file.file_len());
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", model.display());
        println!("{summary}");
    }
    Ok(())
}

fn synth(preset: &str, quant: &str, output: PathBuf, seed: u64) -> Result<()> {
    let preset = Preset::find(preset).ok_or_else(|| {
        anyhow!(
            "unknown preset `{preset}`; presets: {}",
            Preset::names().join(", ")
        )
    })?;
    let quant = Quant::from_name(quant).ok_or_else(|| {
        let names: Vec<_> = Quant::ALL.iter().map(|q| q.name()).collect();
        anyhow!("unknown quant `{quant}`; quants: {}", names.join(", "))
    })?;
    let start = Instant::now();
    let bytes = synth::write_model(preset, quant, seed, &output)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!(
        "wrote {} ({} {}): {} in {:.1} s",
        output.display(),
        preset.name,
        quant.name(),
        human_bytes(bytes),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Info { model, json } => info(model, json),
        Command::Synth {
            preset,
            quant,
            output,
            seed,
        } => synth(&preset, &quant, output, seed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rustorch-compile: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
