//! `rustorch-exec`: runs models. Today: `tokenize` and `template`.
//! Argument parsing and printing only; the work is in the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use rustorch::gguf::GgufFile;
use rustorch::tokenizer::{ChatMessage, ChatTemplate, Tokenizer};

#[derive(Parser)]
#[command(name = "rustorch-exec", version, about = "Run GGUF models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Tokenise text with the model's own tokenizer, as llama.cpp's llama_tokenize.
    Tokenize(TokenizeArgs),
    /// Print the chat prompt the model's template makes for a message.
    Template(TemplateArgs),
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
