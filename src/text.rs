//! The embedding API: a model with its own tokenizer, turning text into text.
//!
//! ```
//! use rustorch::runtime::{DecodeInput, KvType, Sampler, SamplerConfig};
//! use rustorch::text::LanguageModel;
//!
//! # let path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
//! # if !std::path::Path::new(path).exists() {
//! #     assert!(std::env::var("CI").is_err(), "{path} is missing: run scripts/fetch-models.sh");
//! #     return Ok(());
//! # }
//! let lm = LanguageModel::load("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let mut session = lm.model.session(Some(512), KvType::F16, DecodeInput::F32)?;
//! let prompt = lm.encode_prompt("The capital of France is")?;
//! let mut sampler = Sampler::new(SamplerConfig::greedy());
//! let options = lm.options(8);
//! lm.generate(&mut session, &prompt, &mut sampler, &options, |text| print!("{text}"))?;
//! # Ok::<(), rustorch::text::TextError>(())
//! ```

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::Path;

use crate::runtime::cpu::RunError;
use crate::runtime::{GenerateOptions, Generation, LoadError, Model, Sampler, Session};
use crate::tokenizer::{ChatMessage, ChatTemplate, Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the prompt is empty: give at least one token (or a model that adds BOS)")]
    EmptyPrompt,
}

/// A loaded model and the tokenizer read from the same file.
pub struct LanguageModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
}

impl LanguageModel {
    pub fn load(path: impl AsRef<Path>) -> Result<LanguageModel, TextError> {
        let model = Model::load(path)?;
        let tokenizer = Tokenizer::from_gguf(&model.gguf)?;
        Ok(LanguageModel { model, tokenizer })
    }

    /// Tokens of a completion prompt as llama.cpp's completion makes them: BOS where
    /// the model adds one, special-token text parsed.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let tokens = self.tokenizer.encode(text, true, true)?;
        if tokens.is_empty() {
            return Err(TextError::EmptyPrompt);
        }
        Ok(tokens)
    }

    /// The model's chat template (or llama.cpp's built-in choice when the file has none).
    pub fn chat_template(&self) -> Result<ChatTemplate, TextError> {
        Ok(ChatTemplate::for_model(
            &self.model.gguf.header().metadata,
            &self.tokenizer,
        )?)
    }

    /// Every end-of-generation token of the vocabulary.
    pub fn eog_tokens(&self) -> HashSet<u32> {
        (0..self.tokenizer.n_vocab() as u32)
            .filter(|&id| self.tokenizer.is_eog(id))
            .collect()
    }

    /// Options that stop at the model's end-of-generation tokens or after `max_tokens`.
    pub fn options(&self, max_tokens: usize) -> GenerateOptions {
        GenerateOptions {
            max_tokens,
            eog: self.eog_tokens(),
            context_shift: false,
            keep: usize::from(self.tokenizer.add_bos()),
        }
    }

    /// Generates after `prompt`, handing `on_text` each piece of text as soon as it
    /// forms whole characters (a character split over tokens waits for its last byte).
    pub fn generate(
        &self,
        session: &mut Session<'_>,
        prompt: &[u32],
        sampler: &mut Sampler,
        options: &GenerateOptions,
        mut on_text: impl FnMut(&str),
    ) -> Result<Generation, TextError> {
        let mut decoder = self.tokenizer.stream_decoder();
        let mut failure = None;
        let generation = session.generate(prompt, sampler, options, |token| {
            match self.tokenizer.piece(token, false) {
                Ok(bytes) => {
                    let text = decoder.push(bytes);
                    if !text.is_empty() {
                        on_text(&text);
                    }
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        let rest = decoder.finish();
        if !rest.is_empty() {
            on_text(&rest);
        }
        Ok(generation)
    }

    /// Text of generated tokens, special tokens not rendered.
    pub fn decode(&self, tokens: &[u32]) -> Result<String, TextError> {
        let mut bytes = Vec::new();
        for &t in tokens {
            bytes.extend_from_slice(self.tokenizer.piece(t, false)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A conversation over one session. Each turn renders the whole conversation with
/// the chat template, keeps the cached tokens it shares with what the session already
/// holds, and runs only the rest: the KV cache is reused across turns.
pub struct Conversation<'m> {
    lm: &'m LanguageModel,
    template: ChatTemplate,
    messages: Vec<ChatMessage>,
    /// The tokens in the session's cache, in order.
    cached: Vec<u32>,
}

impl<'m> Conversation<'m> {
    pub fn new(lm: &'m LanguageModel, system: Option<&str>) -> Result<Conversation<'m>, TextError> {
        let messages = system
            .map(|s| vec![ChatMessage::new("system", s)])
            .unwrap_or_default();
        Ok(Conversation {
            lm,
            template: lm.chat_template()?,
            messages,
            cached: Vec::new(),
        })
    }

    /// Adds a user message and answers it, streaming the reply's text to `on_text`.
    pub fn reply(
        &mut self,
        session: &mut Session<'_>,
        text: &str,
        sampler: &mut Sampler,
        options: &GenerateOptions,
        on_text: impl FnMut(&str),
    ) -> Result<Generation, TextError> {
        self.messages.push(ChatMessage::new("user", text));
        let rendered = self.template.render(&self.messages, true)?;
        let tokens = self.lm.tokenizer.encode(&rendered, true, true)?;
        if tokens.is_empty() {
            return Err(TextError::EmptyPrompt);
        }
        let shared = self
            .cached
            .iter()
            .zip(&tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(session.position())
            // At least one token must run to give logits.
            .min(tokens.len() - 1);
        session.truncate(shared);
        let start = session.position();
        let generation = self
            .lm
            .generate(session, &tokens[shared..], sampler, options, on_text)?;
        // The cache holds the prompt and every generated token that was run
        // (the last one is not run when generation stops at the length limit).
        let ran = session.position() - start - (tokens.len() - shared);
        self.cached = [&tokens[..], &generation.tokens[..ran]].concat();
        let answer = self.lm.decode(&generation.tokens)?;
        self.messages.push(ChatMessage::new("assistant", answer));
        Ok(generation)
    }
}
