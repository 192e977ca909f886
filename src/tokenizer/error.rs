//! Why a tokenizer could not be built or could not encode its input.

use crate::gguf::MetadataError;

/// Everything that can go wrong building a tokenizer, checking an external one
/// against a model, encoding bytes or rendering a chat template. Each variant says
/// what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A `tokenizer.ggml.*` key is missing or has the wrong type.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The model file names a tokenizer family rustorch does not implement.
    #[error(
        "tokenizer.ggml.model = {0:?} is not supported (rustorch reads \"llama\" and \"gpt2\")"
    )]
    UnsupportedModel(String),
    /// The vocabulary in the file is inconsistent (lengths, ids, merges).
    #[error("invalid tokenizer in the model file: {0}")]
    InvalidVocab(String),
    /// The input is not UTF-8: the byte offset of the first invalid sequence.
    #[error("input is not valid UTF-8: invalid byte sequence at byte offset {offset}")]
    NotUtf8 {
        /// Byte offset of the first byte that is not part of valid UTF-8.
        offset: usize,
    },
    /// An external `tokenizer.json` could not be read or parsed.
    #[error("cannot load tokenizer {path}: {message}")]
    External {
        /// The file given with `--tokenizer`.
        path: String,
        /// What the tokenizers crate reported.
        message: String,
    },
    /// An external tokenizer does not belong to this model.
    #[error("tokenizer {path} does not fit this model: {reason}")]
    Mismatch {
        /// The file given with `--tokenizer`.
        path: String,
        /// What differs (sizes, special-token ids, token texts).
        reason: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is out of range (vocabulary has {n_vocab} tokens)")]
    BadTokenId {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// The tokenizers crate failed while encoding.
    #[error("tokenizer failed: {0}")]
    Engine(String),
    /// A chat template could not be parsed or rendered.
    #[error("chat template: {0}")]
    Template(String),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, TokenizerError>;
