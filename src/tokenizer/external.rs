//! A user-supplied Hugging Face `tokenizer.json` (`--tokenizer`), loaded with the
//! tokenizers crate and accepted only if its vocabulary is the model's.
//!
//! This is the check that makes the original failure impossible: Llama 2 and
//! Mistral 7B both have 32 000 tokens with `<unk> <s> </s>` at ids 0-2, so sizes and
//! special ids alone would pass a wrong file; comparing every token's text does not.

use std::path::Path;

use super::error::{Result, TokenizerError};
use super::special::SpecialTokens;
use super::vocab::Vocab;

/// A checked external tokenizer. Two copies: the crate switches special-token
/// parsing per instance, not per call.
pub(crate) struct External {
    parsing: tokenizers::Tokenizer,
    literal: tokenizers::Tokenizer,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External").finish_non_exhaustive()
    }
}

impl External {
    /// Loads `path` and checks it against the model's vocabulary.
    pub(crate) fn load(path: &Path, vocab: &Vocab, special: &SpecialTokens) -> Result<External> {
        let shown = path.display().to_string();
        let parsing =
            tokenizers::Tokenizer::from_file(path).map_err(|e| TokenizerError::External {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        check(&parsing, vocab, special).map_err(|reason| TokenizerError::Mismatch {
            path: shown,
            reason,
        })?;
        let mut literal = parsing.clone();
        literal.set_encode_special_tokens(true);
        Ok(External { parsing, literal })
    }

    pub(crate) fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let tok = if parse_special {
            &self.parsing
        } else {
            &self.literal
        };
        tok.encode(text, add_special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizerError::Engine(e.to_string()))
    }
}

/// Why `ext` is not the model's tokenizer, if it is not.
fn check(
    ext: &tokenizers::Tokenizer,
    vocab: &Vocab,
    special: &SpecialTokens,
) -> std::result::Result<(), String> {
    let n_model = vocab.len();
    let n_ext = ext.get_vocab_size(true);
    if n_ext != n_model {
        return Err(format!("it has {n_ext} tokens but the model has {n_model}"));
    }
    let named = [
        ("bos", special.bos),
        ("eos", special.eos),
        ("eot", special.eot),
        ("unk", special.unk),
        ("pad", special.pad),
    ];
    for (name, id) in named.into_iter().filter_map(|(n, id)| Some((n, id?))) {
        let model_text = vocab.text(id).unwrap_or_default();
        let ext_text = ext.id_to_token(id);
        if ext_text.as_deref() != Some(model_text) {
            return Err(format!(
                "special token {name} = {id} is {model_text:?} in the model but {} in the tokenizer",
                describe(ext_text.as_deref())
            ));
        }
    }
    let mut differing = Vec::new();
    let mut count = 0usize;
    for id in 0..n_model as u32 {
        let model_text = vocab.text(id).unwrap_or_default();
        let ext_text = ext.id_to_token(id);
        if ext_text.as_deref() != Some(model_text) {
            count += 1;
            if differing.len() < 3 {
                differing.push(format!(
                    "id {id} is {model_text:?} in the model but {}",
                    describe(ext_text.as_deref())
                ));
            }
        }
    }
    if count > 0 {
        return Err(format!(
            "{count} of {n_model} token texts differ ({}{})",
            differing.join("; "),
            if count > differing.len() { "; …" } else { "" }
        ));
    }
    Ok(())
}

fn describe(text: Option<&str>) -> String {
    match text {
        Some(t) => format!("{t:?}"),
        None => "missing".to_string(),
    }
}
