//! Chat templates: the model's own Jinja `tokenizer.chat_template`, rendered as
//! llama.cpp's Jinja mode renders it, or — for a file without one — a built-in
//! format chosen from the vocabulary's turn markers.

mod builtin;
mod jinja;
pub mod strftime;

pub use builtin::{Builtin, BUILTINS};

use super::error::Result;
use super::vocab::optional_str;
use super::Tokenizer;
use crate::gguf::Metadata;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A chat template ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// A Jinja template (normally the model's `tokenizer.chat_template`).
    Jinja {
        /// The template source.
        source: String,
        /// The text of the BOS token (`bos_token` in the template).
        bos_token: String,
        /// The text of the EOS token (`eos_token` in the template).
        eos_token: String,
        /// Whether the tokenizer adds BOS itself, so that a BOS the template
        /// writes first is removed (llama.cpp does the same).
        strip_bos: bool,
        /// Whether the tokenizer adds EOS itself (a trailing EOS is removed).
        strip_eos: bool,
    },
    /// One of llama.cpp's built-in formats.
    Builtin(Builtin),
}

impl ChatTemplate {
    /// The template for a model: its `tokenizer.chat_template` if it has one
    /// (a llama.cpp built-in name there selects that built-in), otherwise the
    /// built-in that fits its vocabulary.
    pub fn for_model(meta: &Metadata, tokenizer: &Tokenizer) -> Result<ChatTemplate> {
        let token_text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.piece(id, true).ok())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        if let Some(source) = optional_str(meta, "tokenizer.chat_template")? {
            if let Some(b) = Builtin::from_name(source) {
                return Ok(ChatTemplate::Builtin(b));
            }
            return Ok(ChatTemplate::Jinja {
                source: source.to_string(),
                bos_token: token_text(tokenizer.special().bos),
                eos_token: token_text(tokenizer.special().eos),
                strip_bos: tokenizer.add_bos(),
                strip_eos: tokenizer.add_eos(),
            });
        }
        let name = optional_str(meta, "general.name")?.unwrap_or_default();
        let vocab = tokenizer.vocab();
        Ok(ChatTemplate::Builtin(Builtin::for_vocabulary(
            |t| vocab.id(t).is_some(),
            name,
        )))
    }

    /// A short description: `jinja (from the model file)` or `built-in gemma`.
    pub fn describe(&self) -> String {
        match self {
            ChatTemplate::Jinja { .. } => "jinja (from the model file)".to_string(),
            ChatTemplate::Builtin(b) => format!("built-in {}", b.name()),
        }
    }

    /// Renders a conversation; `add_generation_prompt` opens the assistant's turn.
    /// The result is the text to tokenise with `add_special = true`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        match self {
            ChatTemplate::Builtin(b) => Ok(b.render(messages, add_generation_prompt)),
            ChatTemplate::Jinja {
                source,
                bos_token,
                eos_token,
                strip_bos,
                strip_eos,
            } => {
                let ctx = jinja::JinjaContext {
                    bos_token,
                    eos_token,
                };
                let mut text = jinja::render(source, messages, add_generation_prompt, &ctx)?;
                if *strip_bos && !bos_token.is_empty() && text.starts_with(bos_token.as_str()) {
                    text.drain(..bos_token.len());
                }
                if *strip_eos && !eos_token.is_empty() && text.ends_with(eos_token.as_str()) {
                    text.truncate(text.len() - eos_token.len());
                }
                Ok(text)
            }
        }
    }
}
