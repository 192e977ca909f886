//! `rustorch-compile`: compiles a GGUF model into a plan (`.rtc`), inspects GGUF
//! models and writes synthetic ones. Argument parsing and printing only; the work
//! is in the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rustorch::compiler::layout::Target;
use rustorch::compiler::passes::{self, PIPELINE};
use rustorch::compiler::plan::DEFAULT_MAX_BINDING;
use rustorch::compiler::stats::Stats;
use rustorch::compiler::{compile, CompileOptions, Plan};
use rustorch::gguf::summary::{human_bytes, ModelSummary};
use rustorch::gguf::GgufFile;
use rustorch::graph::Graph;
use rustorch::runtime::gpu::Module;
use rustorch::synth::{self, Preset, Quant};

#[derive(Parser)]
#[command(
    name = "rustorch-compile",
    version,
    about = "Compile a GGUF model into a plan (.rtc); inspect GGUF models; write synthetic ones",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    compile: CompileArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum DumpFormat {
    Text,
    Dot,
    Json,
}

/// `rustorch-compile MODEL.gguf …`: reads the model's metadata only, never its weights.
#[derive(Args)]
struct CompileArgs {
    /// The GGUF model to compile.
    #[arg(required = true)]
    model: Option<PathBuf>,
    /// Write the plan here (a `.rtc` file that rustorch-exec loads like a `.gguf`).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Context length to plan the KV cache and arenas for (default: the model's).
    #[arg(long)]
    ctx: Option<usize>,
    #[arg(long, value_enum, default_value = "gpu")]
    target: Target,
    /// Print the fused decode graph (text: with each node's arena slot).
    #[arg(long, value_enum)]
    dump_graph: Option<DumpFormat>,
    /// Print the decode graph after this pass instead (see the pass list in --help).
    #[arg(long, value_name = "PASS")]
    dump_after: Option<String>,
    /// Print the statistics as one JSON object.
    #[arg(long)]
    stats_json: bool,
    /// Largest storage buffer a binding may hold; larger weights are split.
    #[arg(long, default_value_t = DEFAULT_MAX_BINDING)]
    max_binding_bytes: u64,
    /// Tokens per prefill step.
    #[arg(long, default_value_t = 512)]
    prefill_chunk: usize,
    /// Write the WGSL modules the model's GPU run may build into DIR, one complete
    /// module per file (`RUSTORCH_WGSL_DIR=DIR rustorch-exec …` builds from them).
    #[arg(long, value_name = "DIR")]
    emit_wgsl: Option<PathBuf>,
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

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn info(model: PathBuf, json: bool) -> Result<()> {
    let file = GgufFile::open(&model)?;
    let summary = ModelSummary::new(file.header(), file.file_len());
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&summary)?))?;
    } else {
        emit(&format!("{}\n{summary}\n", model.display()))?;
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

fn dump(graph: &Graph, format: DumpFormat, plan: Option<&Plan>) -> String {
    match format {
        DumpFormat::Text => match plan.and_then(|p| p.schedule("decode")) {
            Some(decode) => graph.to_text_with(|id| Some(decode.arena.describe(id))),
            None => graph.to_text(),
        },
        DumpFormat::Dot => graph.to_dot(),
        DumpFormat::Json => format!("{:#}", graph.to_json()),
    }
}

fn compile_model(args: CompileArgs) -> Result<()> {
    let model = args.model.expect("clap requires the model");
    if let Some(name) = &args.dump_after {
        if passes::find(name).is_none() {
            let names: Vec<_> = PIPELINE.iter().map(|p| p.name).collect();
            bail!("no pass named `{name}`; passes: {}", names.join(", "));
        }
    }
    let options = CompileOptions {
        context: args.ctx,
        target: args.target,
        max_binding_bytes: args.max_binding_bytes,
        prefill_chunk: args.prefill_chunk,
        ..CompileOptions::default()
    };
    let start = Instant::now();
    let gguf = GgufFile::open(&model)?;
    let mut after_pass = None;
    let plan = compile(&gguf, &options, |pass, graph| {
        if args.dump_after.as_deref() == Some(pass.name) {
            after_pass = Some(graph.clone());
        }
    })
    .with_context(|| format!("compiling {}", model.display()))?;
    if let Some(output) = &args.output {
        plan.save(output)?;
    }
    if let Some(dir) = &args.emit_wgsl {
        emit_wgsl(&plan.graph_all, dir)?;
    }
    let elapsed = start.elapsed();

    let stats = Stats::of(&plan);
    let format = args.dump_graph.unwrap_or(DumpFormat::Text);
    let printed_something = if let Some(graph) = &after_pass {
        emit(&dump(graph, format, None))?;
        true
    } else if let Some(format) = args.dump_graph {
        emit(&dump(&plan.graph_last, format, Some(&plan)))?;
        true
    } else {
        false
    };
    if args.stats_json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&stats)?))?;
    }
    let summary = format!(
        "{} → {}\n{stats}\ncompiled in {:.0} ms",
        model.display(),
        args.output
            .as_ref()
            .map_or("(no plan written: -o FILE)".into(), |o| o
                .display()
                .to_string()),
        elapsed.as_secs_f64() * 1e3
    );
    if printed_something || args.stats_json {
        eprintln!("{summary}");
    } else {
        emit(&format!("{summary}\n"))?;
    }
    Ok(())
}

fn emit_wgsl(graph: &Graph, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let modules = Module::used_by(graph);
    let mut written = 0;
    for module in &modules {
        for &reduction in module.reductions() {
            let file = dir.join(format!("{}.wgsl", module.file_name(reduction)));
            std::fs::write(&file, module.source_with(reduction))
                .with_context(|| format!("writing {}", file.display()))?;
            written += 1;
        }
    }
    eprintln!("wrote {written} WGSL modules to {}", dir.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Info { model, json }) => info(model, json),
        Some(Command::Synth {
            preset,
            quant,
            output,
            seed,
        }) => synth(&preset, &quant, output, seed),
        None => compile_model(cli.compile),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rustorch-compile: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
