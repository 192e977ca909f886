//! `rustorch-exec`: runs models — generation, chat, logits, perplexity, tokenisation.
//! Argument parsing and printing only; the work is in the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use rustorch::gguf::GgufFile;
use rustorch::runtime::bench::LoadReport;
use rustorch::runtime::gpu::{AdapterChoice, DeviceFeatures, GpuContext};
use rustorch::runtime::{DecodeInput, KvType, Sampler, SamplerConfig, Session};
use rustorch::text::{Conversation, LanguageModel};
use rustorch::tokenizer::{ChatMessage, ChatTemplate, Tokenizer};

#[derive(Parser)]
#[command(name = "rustorch-exec", version, about = "Run GGUF models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Continue a prompt, streaming the text (`rustorch-exec MODEL -p TEXT` is short for this).
    Generate(GenerateArgs),
    /// Answer through the model's chat template; without -p, an interactive conversation.
    Chat(ChatArgs),
    /// The top logits at every position of a prompt, as JSON.
    Logits(LogitsArgs),
    /// Perplexity of a text file by llama.cpp's method.
    Perplexity(PerplexityArgs),
    /// Prompt and generation speed as llama-bench measures them (pp N, tg N).
    Bench(BenchArgs),
    /// GPU time per dispatch of a prefill and a decode step (timestamp queries).
    Profile(ProfileArgs),
    /// Tokenise text with the model's own tokenizer, as llama.cpp's llama_tokenize.
    Tokenize(TokenizeArgs),
    /// Print the chat prompt the model's template makes for a message.
    Template(TemplateArgs),
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// A GPU when there is one, else the CPU.
    Auto,
    Gpu,
    Cpu,
}

/// How the decode matmuls take x.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DecodeX {
    /// 8 bits on a GPU, f32 on the CPU.
    Auto,
    F32,
    /// Rounded to 8 bits (a scale per 8 values) for integer dot products, as
    /// llama.cpp's GPU backends do (prompt steps keep f32).
    Int8,
}

#[derive(Args)]
struct RunArgs {
    /// The model: a GGUF file.
    model: PathBuf,
    /// Context length in tokens (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx")]
    context: Option<usize>,
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Use the first GPU adapter whose name contains this.
    #[arg(long)]
    adapter: Option<String>,
    /// Store the KV cache in f32 instead of f16.
    #[arg(long)]
    kv_f32: bool,
    /// Run the prefill matmuls on tensor cores where the GPU has them (wgpu's
    /// experimental cooperative matrices): weights and activations rounded to f16.
    #[arg(long)]
    tensor_cores: bool,
    /// How the decode matmuls take x: rounded to 8 bits (a scale per 8 values) for
    /// integer dot products, as llama.cpp's GPU backends do, or in f32 (prompt steps
    /// keep f32 either way).
    #[arg(long, value_enum, default_value_t = DecodeX::Auto)]
    decode_x: DecodeX,
}

#[derive(Args)]
struct SamplingArgs {
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    temperature: f32,
    /// Keep the K most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens less likely than this fraction of the most likely one.
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalty for recently generated tokens (1: none).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// On a full context, drop the older half and go on (as llama.cpp's --context-shift).
    #[arg(long)]
    context_shift: bool,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The prompt.
    #[arg(short = 'p', long = "prompt")]
    prompt: String,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object with tokens, text, stop reason and timings.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ChatArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Answer this one message and exit.
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "ids"])))]
struct LogitsArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The prompt (BOS added per the model, special tokens parsed).
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// Token ids, comma-separated, taken as given (no BOS added).
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// How many of the largest logits to print per position.
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// JSON output (the only format).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PerplexityArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The text file.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Print {"ppl", "chunks", "ctx"} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Prompt tokens (pp).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    prompt_tokens: usize,
    /// Generated tokens (tg).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    gen_tokens: usize,
    /// Repetitions (after one untimed warm-up).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    repetitions: usize,
    /// Tokens already in the context when each test starts (llama-bench's -d).
    #[arg(short = 'd', long = "n-depth", default_value_t = 0)]
    depth: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ProfileArgs {
    /// The model: a GGUF file.
    model: PathBuf,
    /// The prompt of the prefill step (BOS added per the model).
    #[arg(
        short = 'p',
        long = "prompt",
        default_value = "The quick brown fox jumps over the lazy dog."
    )]
    prompt: String,
    /// Context length in tokens (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx")]
    context: Option<usize>,
    /// Use the first GPU adapter whose name contains this.
    #[arg(long)]
    adapter: Option<String>,
    /// The prefill matmuls on tensor cores where the GPU has them.
    #[arg(long)]
    tensor_cores: bool,
    /// How the decode matmuls take x (auto: in 8 bits).
    #[arg(long, value_enum, default_value_t = DecodeX::Auto)]
    decode_x: DecodeX,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "file"])))]
struct TokenizeArgs {
    /// The GGUF model file.
    model: PathBuf,
    /// The text to tokenise.
    #[arg(long)]
    text: Option<String>,
    /// Read the text from a file (must be UTF-8).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Tokenise special-token text (e.g. "<|im_end|>") as plain text.
    #[arg(long)]
    no_parse_special: bool,
    /// Do not add BOS/EOS even where the model asks for them.
    #[arg(long)]
    no_add_special: bool,
    /// Print one JSON object {"tokens": [...], "pieces": [...]}.
    #[arg(long)]
    json: bool,
    /// Encode with this Hugging Face tokenizer.json instead (refused unless its
    /// vocabulary is the model's).
    #[arg(long, value_name = "TOKENIZER_JSON")]
    tokenizer: Option<PathBuf>,
}

#[derive(Args)]
struct TemplateArgs {
    /// The GGUF model file.
    model: PathBuf,
    /// The user's message.
    #[arg(long)]
    user: String,
    /// A system message before it.
    #[arg(long)]
    system: Option<String>,
}

fn load(model: &Path) -> Result<(GgufFile, Tokenizer)> {
    let file = GgufFile::open(model)?;
    let tok = Tokenizer::from_gguf(&file)
        .with_context(|| format!("reading the tokenizer of {}", model.display()))?;
    Ok((file, tok))
}

/// A piece for the `id<TAB>piece` listing: text with `\n`, `\t`, `\r`, `\\` and
/// other control characters escaped, and bytes that are not UTF-8 as `\xNN`.
fn escape_piece(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn tokenize(args: TokenizeArgs) -> Result<()> {
    let (_file, mut tok) = load(&args.model)?;
    if let Some(path) = &args.tokenizer {
        tok.use_external(path)?;
    }
    let (add_special, parse_special) = (!args.no_add_special, !args.no_parse_special);
    let ids = match (&args.text, &args.file) {
        (Some(text), _) => tok.encode(text, add_special, parse_special)?,
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            tok.encode_bytes(&bytes, add_special, parse_special)
                .with_context(|| format!("tokenising {}", path.display()))?
        }
        (None, None) => unreachable!("clap requires --text or --file"),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let pieces = ids
            .iter()
            .map(|&id| Ok(String::from_utf8_lossy(tok.piece(id, true)?).into_owned()))
            .collect::<Result<Vec<_>>>()?;
        // Written by hand to keep the key order: tokens, then pieces.
        writeln!(
            out,
            "{{\"tokens\":{},\"pieces\":{}}}",
            serde_json::to_string(&ids)?,
            serde_json::to_string(&pieces)?
        )?;
    } else {
        for &id in &ids {
            writeln!(out, "{id}\t{}", escape_piece(tok.piece(id, true)?))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn template(args: TemplateArgs) -> Result<()> {
    let (file, tok) = load(&args.model)?;
    let template = ChatTemplate::for_model(&file.header().metadata, &tok)?;
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(ChatMessage::new("system", system));
    }
    messages.push(ChatMessage::new("user", args.user));
    let prompt = template.render(&messages, true)?;
    let mut out = std::io::stdout().lock();
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Loads the model and tokenizer for a run.
fn load_model(run: &RunArgs) -> Result<LanguageModel> {
    let started = Instant::now();
    let lm = LanguageModel::load(&run.model)
        .with_context(|| format!("loading {}", run.model.display()))?;
    eprintln!(
        "rustorch-exec: {} ({} layers) read in {:.0} ms",
        run.model.display(),
        lm.model.config.n_layer,
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(lm)
}

/// The GPU to run on, or `None` for the CPU interpreter. `auto` takes a hardware GPU
/// when there is one and says so when it falls back to the CPU.
fn choose_gpu(run: &RunArgs) -> Result<Option<GpuContext>> {
    // Mesa's EGL complains on stderr without it while wgpu lists adapters; still
    // single-threaded here, so setting it is safe.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let choice = run.adapter.as_deref().map_or(AdapterChoice::Auto, |name| {
        AdapterChoice::Named(name.to_string())
    });
    let open = |choice: &AdapterChoice| {
        if !run.tensor_cores {
            return GpuContext::new(choice);
        }
        let features = DeviceFeatures {
            tensor_cores: true,
            ..DeviceFeatures::default()
        };
        let gpu = GpuContext::open(choice, features)?;
        if !gpu.has_tensor_cores() {
            eprintln!(
                "rustorch-exec: {} has no tensor cores wgpu can use (16×16×16 f16 cooperative matrices, subgroups of 32); the prefill runs in f32",
                gpu.adapter_description()
            );
        }
        Ok(gpu)
    };
    match run.backend {
        Backend::Cpu => Ok(None),
        Backend::Gpu => Ok(Some(open(&choice)?)),
        Backend::Auto => match open(&choice) {
            Ok(gpu) if !gpu.is_software() => Ok(Some(gpu)),
            Ok(gpu) => {
                eprintln!(
                    "rustorch-exec: only a software GPU ({}) is present; running on the CPU (--backend gpu uses it anyway)",
                    gpu.adapter_description()
                );
                Ok(None)
            }
            Err(e) => {
                eprintln!("rustorch-exec: {e}; running on the CPU");
                Ok(None)
            }
        },
    }
}

/// A session on the chosen backend.
fn open_session<'m>(
    run: &RunArgs,
    lm: &'m LanguageModel,
    gpu: Option<&'m GpuContext>,
) -> Result<Session<'m>> {
    let context = Some(context_of(run, lm));
    let started = Instant::now();
    let session = match gpu {
        Some(gpu) => lm
            .model
            .gpu_session(gpu, context, kv_type(run), decode_input(run, true))?,
        None => lm
            .model
            .session(context, kv_type(run), decode_input(run, false))?,
    };
    let mut device = gpu.map_or_else(
        || "the CPU".to_string(),
        |g| match g.has_tensor_cores() {
            true => format!("{} with tensor cores", g.adapter_description()),
            false => g.adapter_description(),
        },
    );
    if decode_input(run, gpu.is_some()) == DecodeInput::Int8 {
        device.push_str(", x in 8 bits in the decode matmuls");
    }
    eprintln!(
        "rustorch-exec: running on {device} (ready in {:.0} ms)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(session)
}

fn context_of(run: &RunArgs, lm: &LanguageModel) -> usize {
    run.context
        .unwrap_or(lm.model.config.context_length.min(4096))
}

fn kv_type(run: &RunArgs) -> KvType {
    if run.kv_f32 {
        KvType::F32
    } else {
        KvType::F16
    }
}

fn decode_input(run: &RunArgs, on_gpu: bool) -> DecodeInput {
    match run.decode_x {
        DecodeX::Int8 => DecodeInput::Int8,
        DecodeX::Auto if on_gpu => DecodeInput::Int8,
        DecodeX::Auto | DecodeX::F32 => DecodeInput::F32,
    }
}

fn sampler_config(s: &SamplingArgs) -> Result<SamplerConfig> {
    let config = SamplerConfig {
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: s.repeat_last_n,
        seed: s.seed,
    };
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

fn generate(args: GenerateArgs) -> Result<()> {
    let config = sampler_config(&args.sampling)?;
    let started = Instant::now();
    let lm = load_model(&args.run)?;
    let gpu = choose_gpu(&args.run)?;
    let mut session = open_session(&args.run, &lm, gpu.as_ref())?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let prompt = lm.encode_prompt(&args.prompt)?;
    let mut options = lm.options(args.sampling.n_predict);
    options.context_shift = args.sampling.context_shift;
    let mut sampler = Sampler::new(config);
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    let mut write_error = None;
    let generation = lm.generate(&mut session, &prompt, &mut sampler, &options, |piece| {
        text.push_str(piece);
        if !args.json && write_error.is_none() {
            write_error = out
                .write_all(piece.as_bytes())
                .and_then(|()| out.flush())
                .err();
        }
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let t = &generation.timings;
    if args.json {
        let json = serde_json::json!({
            "prompt_tokens": prompt,
            "tokens": generation.tokens,
            "text": text,
            "stop": generation.stop,
            "timings": {
                "load_ms": load_ms,
                "prompt_ms": t.prompt_ms,
                "gen_ms": t.gen_ms,
                "prompt_tok_s": t.prompt_tok_s,
                "gen_tok_s": t.gen_tok_s,
            },
        });
        writeln!(out, "{json}")?;
    } else {
        writeln!(out)?;
        eprintln!(
            "rustorch-exec: prompt {} tokens at {:.1} tok/s, generated {} at {:.1} tok/s, stop: {:?}",
            prompt.len(),
            t.prompt_tok_s,
            generation.tokens.len(),
            t.gen_tok_s,
            generation.stop
        );
    }
    Ok(())
}

fn chat(args: ChatArgs) -> Result<()> {
    let config = sampler_config(&args.sampling)?;
    let lm = load_model(&args.run)?;
    let gpu = choose_gpu(&args.run)?;
    let mut session = open_session(&args.run, &lm, gpu.as_ref())?;
    let options = lm.options(args.sampling.n_predict);
    let mut sampler = Sampler::new(config);
    let mut conversation = Conversation::new(&lm, args.system.as_deref())?;
    let mut out = std::io::stdout();
    let mut answer = |conversation: &mut Conversation,
                      session: &mut rustorch::runtime::Session,
                      text: &str|
     -> Result<()> {
        conversation.reply(session, text, &mut sampler, &options, |piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        })?;
        writeln!(out)?;
        Ok(())
    };
    if let Some(prompt) = &args.prompt {
        return answer(&mut conversation, &mut session, prompt);
    }
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if !line.is_empty() {
            answer(&mut conversation, &mut session, line)?;
        }
    }
}

fn logits(args: LogitsArgs) -> Result<()> {
    let lm = load_model(&args.run)?;
    let tokens = match (&args.prompt, &args.ids) {
        (Some(prompt), _) => lm.encode_prompt(prompt)?,
        (None, Some(ids)) => ids.clone(),
        (None, None) => unreachable!("clap requires -p or --ids"),
    };
    let gpu = choose_gpu(&args.run)?;
    let mut session = open_session(&args.run, &lm, gpu.as_ref())?;
    let logits = session.logits_all(&tokens)?;
    let n_vocab = lm.model.config.n_vocab;
    let positions: Vec<serde_json::Value> = logits
        .chunks_exact(n_vocab)
        .map(|row| serde_json::json!({ "top": top_logits(row, args.top) }))
        .collect();
    let json = serde_json::json!({ "tokens": tokens, "positions": positions });
    writeln!(std::io::stdout().lock(), "{json}")?;
    Ok(())
}

/// The `k` largest logits as `[id, logit]`, largest first.
fn top_logits(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    let k = k.min(indexed.len());
    if k == 0 {
        return Vec::new();
    }
    indexed.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    indexed.truncate(k);
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1));
    indexed
}

fn perplexity(args: PerplexityArgs) -> Result<()> {
    let lm = load_model(&args.run)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    // llama-perplexity tokenises the whole text once, special-token text as plain text.
    let tokens = lm.tokenizer.encode_bytes(&bytes, true, false)?;
    let ctx = args.run.context.unwrap_or(512);
    let bos = lm
        .tokenizer
        .add_bos()
        .then(|| lm.tokenizer.special().bos)
        .flatten();
    let result = rustorch::runtime::perplexity(&lm.model, &tokens, ctx, bos, |chunk, running| {
        eprint!("[{}]{running:.4} ", chunk + 1);
    })?;
    eprintln!();
    if args.json {
        let json =
            serde_json::json!({ "ppl": result.ppl, "chunks": result.chunks, "ctx": result.ctx });
        writeln!(std::io::stdout().lock(), "{json}")?;
    } else {
        writeln!(
            std::io::stdout().lock(),
            "PPL = {:.4} ({} chunks of {} tokens)",
            result.ppl,
            result.chunks,
            result.ctx
        )?;
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let started = Instant::now();
    let lm = load_model(&args.run)?;
    let file = started.elapsed();
    let gpu = choose_gpu(&args.run)?;
    let device = started.elapsed() - file;
    let mut session = open_session(&args.run, &lm, gpu.as_ref())?;
    let opened = started.elapsed() - file - device;
    let load = LoadReport::after_first_step(&mut session, file, device, opened)?;
    let report = rustorch::runtime::bench::bench(
        &mut session,
        args.prompt_tokens,
        args.gen_tokens,
        args.repetitions,
        args.depth,
    )?;
    let device = gpu.as_ref().map_or_else(
        || format!("CPU, {} threads", rayon::current_num_threads()),
        |g| g.adapter_description(),
    );
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "model": args.run.model.display().to_string(),
            "device": device,
            "load_ms": load.to_first_token_ms,
            "load": load,
            "weight_bytes": lm.model.gguf.weight_bytes(),
            "report": report,
        });
        writeln!(out, "{json}")?;
    } else {
        let at_depth = match report.depth {
            0 => String::new(),
            d => format!(" @ d{d}"),
        };
        let row = |name: String, s: &rustorch::runtime::bench::Spread| {
            format!(
                "| {name:<14} | {:>14.1} | {:>10.1} .. {:<10.1} |",
                s.median, s.min, s.max
            )
        };
        writeln!(out, "{} on {device}", args.run.model.display())?;
        let of_session = match (load.weights_ms, load.pipelines_ms) {
            (Some(w), Some(p)) => format!(" (weights {w:.0}, pipelines {p:.0})"),
            _ => String::new(),
        };
        writeln!(
            out,
            "load to first token: {:.0} ms = file {:.0} + device {:.0} + session {:.0}{of_session} + first step {:.0}",
            load.to_first_token_ms, load.file_ms, load.device_ms, load.session_ms, load.first_step_ms
        )?;
        writeln!(
            out,
            "| test           | tok/s (median) | spread                  |"
        )?;
        writeln!(
            out,
            "{}",
            row(
                format!("pp{}{at_depth}", report.prompt_tokens),
                &report.pp_tok_s
            )
        )?;
        writeln!(
            out,
            "{}",
            row(
                format!("tg{}{at_depth}", report.gen_tokens),
                &report.tg_tok_s
            )
        )?;
        if let Some(g) = &report.gpu {
            let mb = |bytes: u64| bytes as f64 / 1e6;
            writeln!(out, "dispatches per token:   {}", g.dispatches_per_token)?;
            writeln!(
                out,
                "weight bytes per token: {:.1} MB",
                mb(g.weight_bytes_per_token)
            )?;
            writeln!(
                out,
                "copy bandwidth:         {:.1} GB/s ({:.0} MiB, median of {}; {})",
                g.copy.gb_s,
                g.copy.bytes as f64 / (1 << 20) as f64,
                g.copy.repetitions,
                g.copy_definition
            )?;
            writeln!(
                out,
                "tg of copy bandwidth:   {:.1}% (weight bytes per token × tg tok/s ÷ copy bandwidth)",
                100.0 * g.tg_bandwidth_fraction
            )?;
            if let (Some(us), Some(busy)) = (g.tg_step_gpu_us, g.tg_device_busy) {
                writeln!(
                    out,
                    "tg step on the GPU:     {us:.1} µs (one pass), the device busy {:.0}% of tg's time",
                    100.0 * busy
                )?;
            }
            writeln!(
                out,
                "GPU memory allocated:   {:.1} MB (weights, activations, KV cache)",
                mb(g.allocated_bytes)
            )?;
            writeln!(
                out,
                "activation arena:       {:.1} MB ({:.1} MB in buffers of their own)",
                mb(g.activation_bytes),
                mb(g.unshared_activation_bytes)
            )?;
        }
    }
    Ok(())
}

fn profile(args: ProfileArgs) -> Result<()> {
    let run = RunArgs {
        model: args.model,
        context: args.context,
        backend: Backend::Gpu,
        adapter: args.adapter,
        kv_f32: false,
        tensor_cores: args.tensor_cores,
        decode_x: args.decode_x,
    };
    let gpu = choose_gpu(&run)?.context("profile runs on a GPU")?;
    if !gpu.has_timestamps() {
        anyhow::bail!(
            "{} offers no timestamp queries (TIMESTAMP_QUERY), which profile needs",
            gpu.adapter_description()
        );
    }
    let lm = load_model(&run)?;
    let prompt = lm.encode_prompt(&args.prompt)?;
    let mut session = open_session(&run, &lm, Some(&gpu))?;
    let (executor, kv) = session.gpu_parts().context("profile runs on a GPU")?;
    let profile = rustorch::runtime::gpu::profile(executor, kv, &prompt)?;
    let mut out = std::io::stdout().lock();
    let device = gpu.adapter_description();
    if args.json {
        let mut json = serde_json::json!({
            "model": run.model.display().to_string(),
            "device": device,
            "prompt_tokens": prompt,
        });
        if let (Some(json), serde_json::Value::Object(fields)) =
            (json.as_object_mut(), serde_json::to_value(&profile)?)
        {
            json.extend(fields);
        }
        writeln!(out, "{json}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{} on {device}: {} dispatches per token",
        run.model.display(),
        profile.dispatches_per_token
    )?;
    for (name, step) in [("prefill", &profile.prefill), ("decode", &profile.decode)] {
        write_step(&mut out, name, step)?;
    }
    Ok(())
}

/// One profiled step: its dispatches, longest first, then its totals.
fn write_step(
    out: &mut impl Write,
    name: &str,
    step: &rustorch::runtime::gpu::StepProfile,
) -> Result<()> {
    let mut rows: Vec<_> = step.dispatches.iter().collect();
    rows.sort_by(|a, b| b.gpu_us.total_cmp(&a.gpu_us));
    let width = rows.iter().map(|d| d.label.len()).max().unwrap_or(0).max(8);
    writeln!(
        out,
        "\n{name}: {} tokens after {} in the cache",
        step.tokens, step.past
    )?;
    writeln!(
        out,
        "| {:<width$} | {:>10} | {:>6} | {:>9} | {:>8} |",
        "dispatch", "GPU µs", "%", "weight MB", "GB/s"
    )?;
    for d in rows {
        let (weights, rate) = match d.gb_s {
            Some(rate) => (
                format!("{:.2}", d.weight_bytes as f64 / 1e6),
                // Software adapters reach hundredths of a GB/s.
                format!("{rate:.*}", if rate < 1.0 { 3 } else { 1 }),
            ),
            None => (String::new(), String::new()),
        };
        writeln!(
            out,
            "| {:<width$} | {:>10.1} | {:>5.1}% | {weights:>9} | {rate:>8} |",
            d.label, d.gpu_us, d.percent
        )?;
    }
    writeln!(
        out,
        "{name}: GPU {:.1} µs summed over {} dispatches ({:.1} a token), span {:.1} µs; \
         {:.1} µs as one pass; wall {:.1} µs profiled, {:.1} µs unprofiled",
        step.gpu_us,
        step.dispatches.len(),
        step.dispatches.len() as f64 / step.tokens as f64,
        step.span_us,
        step.one_pass_us,
        step.wall_us,
        step.unprofiled_wall_us
    )?;
    Ok(())
}

/// The error and its causes on one line, skipping a cause its parent already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out.replace('\n', " ")
}

/// Subcommand names; anything else in first place means `generate`.
const SUBCOMMANDS: &[&str] = &[
    "bench",
    "profile",
    "generate",
    "chat",
    "logits",
    "perplexity",
    "tokenize",
    "template",
    "help",
];

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let shorthand = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| !a.starts_with('-') && !SUBCOMMANDS.contains(&a));
    if shorthand {
        args.insert(1, "generate".into());
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message, up to its usage section, on one line.
            let message = e.to_string();
            let text: Vec<&str> = message
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let text = text.join(" ");
            let text = text.trim_start_matches("error: ");
            eprintln!("rustorch-exec: error: {text} (see --help)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Generate(args) => generate(args),
        Command::Chat(args) => chat(args),
        Command::Logits(args) => logits(args),
        Command::Perplexity(args) => perplexity(args),
        Command::Bench(args) => bench(args),
        Command::Profile(args) => profile(args),
        Command::Tokenize(args) => tokenize(args),
        Command::Template(args) => template(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`| head`) is not an error worth reporting.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("rustorch-exec: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
