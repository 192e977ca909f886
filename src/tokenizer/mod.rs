//! The tokenizer stored in a GGUF file (`tokenizer.ggml.*`), producing exactly
//! llama.cpp's token ids, plus chat-template rendering.
//!
//! - `tokenizer.ggml.model = llama`: SentencePiece with scores ([`spm`]).
//! - `tokenizer.ggml.model = gpt2`: byte-level BPE on the tokenizers crate ([`bpe`]),
//!   words cut by the regexes of the `tokenizer.ggml.pre` family ([`pretok`]).
//!
//! Special-token texts in the input are matched first ([`partition`]), then each
//! plain-text fragment goes to the model. A `tokenizer.json` given by the user is
//! accepted only when its vocabulary is the model's, token for token ([`external`]).

mod bpe;
pub mod chat;
mod decode;
mod error;
mod external;
mod partition;
pub mod pretok;
mod special;
mod spm;
mod vocab;

use std::path::Path;

pub use chat::{ChatMessage, ChatTemplate};
pub use decode::{DetokenizeOptions, StreamDecoder};
pub use error::{Result, TokenizerError};
pub use partition::Fragment;
pub use pretok::PreTokenizer;
pub use special::SpecialTokens;
pub use vocab::{Attrs, TokenType, Vocab};

use crate::gguf::{GgufFile, Metadata};
use bpe::ByteLevelBpe;
use decode::Spelling;
use external::External;
use partition::SpecialMatcher;
use special::Defaults;
use spm::Spm;

/// The tokenizer family of a model.
#[derive(Debug)]
enum Model {
    SentencePiece(Box<Spm>),
    ByteLevelBpe(Box<ByteLevelBpe>, &'static PreTokenizer),
}

/// A model's tokenizer: vocabulary, special tokens, the encoding algorithm and the
/// flags llama.cpp derives from the file.
#[derive(Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    special: SpecialTokens,
    model: Model,
    matcher: SpecialMatcher,
    /// Bytes of each token with special tokens rendered.
    pieces: Vec<Box<[u8]>>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    external: Option<External>,
}

impl Tokenizer {
    /// The tokenizer of an open GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        Tokenizer::from_metadata(&file.header().metadata)
    }

    /// Opens a GGUF file and reads its tokenizer.
    pub fn open(path: impl AsRef<Path>) -> anyhow::Result<Tokenizer> {
        let file = GgufFile::open(path.as_ref())?;
        Ok(Tokenizer::from_gguf(&file)?)
    }

    /// The tokenizer described by GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_metadata(meta: &Metadata) -> Result<Tokenizer> {
        let model_name = meta.get_str("tokenizer.ggml.model")?;
        let pre_name = vocab::optional_str(meta, "tokenizer.ggml.pre")?;
        let mut vocab = Vocab::from_metadata(meta)?;

        // Family defaults, which the file's keys then override.
        let (defaults, mut add_bos, mut add_space_prefix, clean_spaces, family) = match model_name {
            "llama" => {
                let d = Defaults {
                    bos: Some(1),
                    eos: Some(2),
                    unk: Some(0),
                };
                (d, true, true, false, None)
            }
            "gpt2" => {
                let family = PreTokenizer::select(pre_name);
                let d = Defaults {
                    bos: Some(11),
                    eos: Some(11),
                    unk: None,
                };
                (d, family.add_bos, false, family.clean_spaces, Some(family))
            }
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        if let Some(v) = meta.optional("tokenizer.ggml.add_space_prefix", Metadata::get_bool)? {
            add_space_prefix = v;
        }
        let special = SpecialTokens::derive(meta, &mut vocab, defaults)?;
        if let Some(v) = meta.optional("tokenizer.ggml.add_bos_token", Metadata::get_bool)? {
            add_bos = v;
        }
        let add_eos = meta
            .optional("tokenizer.ggml.add_eos_token", Metadata::get_bool)?
            .unwrap_or(false);

        let (model, spelling) = match family {
            None => (
                Model::SentencePiece(Box::new(Spm::new(&vocab, special.unk))),
                Spelling::SentencePiece,
            ),
            Some(family) => (
                Model::ByteLevelBpe(Box::new(ByteLevelBpe::new(meta, &vocab, family)?), family),
                Spelling::ByteLevel,
            ),
        };
        let matcher = SpecialMatcher::new(&vocab)?;
        let pieces = decode::pieces(&vocab, spelling);
        Ok(Tokenizer {
            vocab,
            special,
            model,
            matcher,
            pieces,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            external: None,
        })
    }

    /// Replaces the encoder with a Hugging Face `tokenizer.json`, after checking that
    /// its vocabulary is this model's: same size, and the same text for every id
    /// (special tokens included). Anything else is refused with the difference.
    pub fn use_external(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.external = Some(External::load(path.as_ref(), &self.vocab, &self.special)?);
        Ok(())
    }

    /// Whether a `tokenizer.json` override is in use.
    pub fn is_external(&self) -> bool {
        self.external.is_some()
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The special tokens and the end-of-generation set.
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    /// Whether `id` ends generation.
    pub fn is_eog(&self, id: u32) -> bool {
        self.special.is_eog(id)
    }

    /// Whether encoding with `add_special` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether encoding with `add_special` puts EOS last.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether SentencePiece text gets a leading space (`tokenizer.ggml.add_space_prefix`).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// `"llama"` (SentencePiece) or `"gpt2"` (byte-level BPE).
    pub fn model_name(&self) -> &'static str {
        match self.model {
            Model::SentencePiece(_) => "llama",
            Model::ByteLevelBpe(..) => "gpt2",
        }
    }

    /// The pre-tokeniser family in use (byte-level BPE only).
    pub fn pre_tokenizer(&self) -> Option<&'static PreTokenizer> {
        match self.model {
            Model::SentencePiece(_) => None,
            Model::ByteLevelBpe(_, family) => Some(family),
        }
    }

    /// Splits text into plain-text fragments and special tokens, the first step of
    /// encoding.
    pub fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        self.matcher.split(text, parse_special)
    }

    /// Encodes text as llama.cpp's `llama_tokenize(text, add_special, parse_special)`
    /// does: `add_special` adds BOS/EOS where the model asks for them;
    /// `parse_special` turns special-token texts in the input into those tokens
    /// (otherwise control tokens are tokenised as plain text; user-defined tokens
    /// are always matched).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        if let Some(ext) = &self.external {
            return ext.encode(text, add_special, parse_special);
        }
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.push(self.special.bos.ok_or_else(|| {
                TokenizerError::InvalidVocab("the model asks for BOS but names no BOS token".into())
            })?);
        }
        let fragments = self.matcher.split(text, parse_special);
        match &self.model {
            Model::SentencePiece(spm) => {
                // Text right after a special token (or at the start) gets the
                // space prefix, when the model asks for one.
                let mut after_special = true;
                let mut buf = String::new();
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => {
                            buf.clear();
                            if self.add_space_prefix && after_special {
                                buf.push('▁');
                            }
                            for c in t.chars() {
                                buf.push(if c == ' ' { '▁' } else { c });
                            }
                            spm.encode(&self.vocab, &buf, &mut out);
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
            }
            Model::ByteLevelBpe(bpe, _) => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(t) => bpe.encode(t, &mut out)?,
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(self.special.eos.ok_or_else(|| {
                TokenizerError::InvalidVocab("the model asks for EOS but names no EOS token".into())
            })?);
        }
        Ok(out)
    }

    /// Encodes bytes that should be UTF-8; anything else is an error naming the
    /// offset of the first bad byte.
    pub fn encode_bytes(
        &self,
        bytes: &[u8],
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let text = std::str::from_utf8(bytes).map_err(|e| TokenizerError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        self.encode(text, add_special, parse_special)
    }

    /// The bytes a token stands for, as llama.cpp's `llama_token_to_piece(id,
    /// lstrip = 0, special)`: with `special` off, control and unknown tokens are
    /// empty. A piece may be part of a UTF-8 character.
    pub fn piece(&self, id: u32, special: bool) -> Result<&[u8]> {
        let bytes = self
            .pieces
            .get(id as usize)
            .ok_or(TokenizerError::BadTokenId {
                id,
                n_vocab: self.vocab.len(),
            })?;
        if !special && self.vocab.attrs(id).is_hidden() {
            return Ok(&[]);
        }
        Ok(bytes)
    }

    /// Token ids back to bytes, as llama.cpp's `llama_detokenize(remove_special,
    /// unparse_special)`, including its space clean-up for byte-level models.
    pub fn detokenize(&self, ids: &[u32], options: DetokenizeOptions) -> Result<Vec<u8>> {
        let mut ids = ids;
        let mut strip_space = self.add_space_prefix;
        if options.remove_special
            && self.add_bos
            && !ids.is_empty()
            && ids.first().copied() == self.special.bos
        {
            strip_space = false;
            ids = &ids[1..];
        }
        if options.remove_special && self.add_eos && ids.last().copied() == self.special.eos {
            ids = &ids[..ids.len().saturating_sub(1)];
        }
        let mut out = Vec::new();
        for &id in ids {
            let piece = self.piece(id, options.unparse_special)?;
            let piece = if strip_space {
                piece.strip_prefix(b" ").unwrap_or(piece)
            } else {
                piece
            };
            strip_space = false;
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            out = decode::clean_spaces(&out);
        }
        Ok(out)
    }

    /// [`detokenize`](Self::detokenize) as text, with bytes that are not UTF-8
    /// shown as U+FFFD.
    pub fn decode(&self, ids: &[u32], options: DetokenizeOptions) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.detokenize(ids, options)?).into_owned())
    }

    /// A decoder for generated tokens that never emits half a UTF-8 character:
    /// push each token's [`piece`](Self::piece) into it.
    pub fn stream_decoder(&self) -> StreamDecoder {
        StreamDecoder::new()
    }
}
