//! SentencePiece tokenisation as llama.cpp does it for `tokenizer.ggml.model = llama`
//! (`llm_tokenizer_spm` in `src/llama-vocab.cpp`): start from single characters,
//! repeatedly merge the adjacent pair whose concatenation is the highest-scoring
//! vocabulary entry (leftmost on ties), and spell whatever is left that is not a
//! token as `<0xNN>` byte tokens.
//!
//! Hand-written because the tokenizers crate has no model for this: its `Unigram`
//! picks the best segmentation by Viterbi (different ids on real text), and its `BPE`
//! merges by an explicit rank list rather than by the score of the merged piece.
//! The queue holds at most one entry per merge and each merge is a hash lookup of a
//! slice of the input (merged pieces are always contiguous), so a 1 MB word costs
//! O(n log n), not O(n²).
//!
//! Speed-up that changes no result: the text is cut before every `▁` that no
//! vocabulary piece can join to the character before it (for Gemma 3 every `▁`
//! except after `>`, for Llama 2 every one). No merge can cross such a cut, so the
//! pieces on each side evolve independently and can be encoded separately — and
//! short pieces (words, mostly) are cached.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::RwLock;

use ahash::{AHashMap, AHashSet};

use super::vocab::Vocab;

/// A run of the input: bytes `start..start + len`, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

/// "No neighbour" in [`Symbol::prev`] / [`Symbol::next`].
const NONE: u32 = u32::MAX;

/// A candidate merge of symbol `left` with its right neighbour.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    left: u32,
    right: u32,
    /// Byte length of the merged piece; a candidate whose symbols have changed
    /// since it was queued no longer has this length and is dropped.
    len: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Words longer than this (in bytes) are not cached.
const CACHED_WORD_LEN: usize = 64;
/// The cache is emptied when it holds this many words.
const CACHE_CAPACITY: usize = 50_000;

/// The SentencePiece model over a vocabulary.
#[derive(Debug)]
pub(crate) struct Spm {
    /// Token for each byte value (`<0xNN>`, or the byte itself as a one-byte token).
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
    /// Characters that some piece joins to a following `▁` (`>` in Gemma's `>▁</`).
    joins_space: AHashSet<char>,
    /// Ids of recently encoded words.
    cache: RwLock<AHashMap<Box<str>, Box<[u32]>>>,
}

impl Spm {
    pub(crate) fn new(vocab: &Vocab, unk: Option<u32>) -> Spm {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = vocab.id(&format!("<0x{b:02X}>")).or_else(|| {
                // Some vocabularies spell an ASCII byte as itself.
                char::from_u32(b as u32)
                    .filter(|_| b < 0x80)
                    .and_then(|c| vocab.id(c.encode_utf8(&mut [0; 4])))
            });
        }
        let mut joins_space = AHashSet::new();
        for text in vocab.texts() {
            let mut prev = None;
            for c in text.chars() {
                if c == '▁' {
                    if let Some(p) = prev.filter(|&p| p != '▁') {
                        joins_space.insert(p);
                    }
                }
                prev = Some(c);
            }
        }
        Spm {
            byte_tokens,
            unk,
            joins_space,
            cache: RwLock::new(AHashMap::new()),
        }
    }

    /// Tokenises `text` (whose spaces the caller has already replaced by `▁`),
    /// appending the ids to `out`.
    pub(crate) fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut start = 0;
        let mut prev = None;
        for (i, c) in text.char_indices() {
            if c == '▁' && prev.is_some_and(|p| p != '▁' && !self.joins_space.contains(&p)) {
                self.encode_word(vocab, &text[start..i], out);
                start = i;
            }
            prev = Some(c);
        }
        self.encode_word(vocab, &text[start..], out);
    }

    /// Encodes one piece between cuts, through the cache when it is short.
    fn encode_word(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>) {
        if word.len() > CACHED_WORD_LEN {
            return self.merge(vocab, word, out);
        }
        if let Ok(cache) = self.cache.read() {
            if let Some(ids) = cache.get(word) {
                out.extend_from_slice(ids);
                return;
            }
        }
        let from = out.len();
        self.merge(vocab, word, out);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(word.into(), out[from..].into());
        }
    }

    /// The merge loop over one piece of text.
    fn merge(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        // Offsets are u32 to keep the queue small; longer text is encoded in
        // pieces of at most 2 GiB, cut at a character boundary.
        if text.len() > (u32::MAX / 2) as usize {
            let mut cut = (u32::MAX / 2) as usize;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.merge(vocab, &text[..cut], out);
            return self.merge(vocab, &text[cut..], out);
        }
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .enumerate()
            .map(|(i, (start, ch))| Symbol {
                start: start as u32,
                len: ch.len_utf8() as u32,
                prev: if i == 0 { NONE } else { i as u32 - 1 },
                next: i as u32 + 1,
            })
            .collect();
        let Some(last) = symbols.last_mut() else {
            return;
        };
        last.next = NONE;

        let slice = |s: &Symbol, r: &Symbol| &text[s.start as usize..(r.start + r.len) as usize];
        let mut queue = BinaryHeap::with_capacity(symbols.len());
        let push = |queue: &mut BinaryHeap<Candidate>, symbols: &[Symbol], left: u32| {
            let l = symbols[left as usize];
            if l.next == NONE {
                return;
            }
            let r = symbols[l.next as usize];
            let piece = slice(&l, &r);
            if let Some(id) = vocab.id(piece) {
                queue.push(Candidate {
                    score: vocab.score(id),
                    left,
                    right: l.next,
                    len: piece.len() as u32,
                });
            }
        };
        for left in 0..symbols.len() as u32 - 1 {
            push(&mut queue, &symbols, left);
        }

        while let Some(c) = queue.pop() {
            let (l, r) = (symbols[c.left as usize], symbols[c.right as usize]);
            if l.len == 0 || r.len == 0 || l.len + r.len != c.len {
                continue; // one side has merged since this candidate was queued
            }
            let merged = &mut symbols[c.left as usize];
            merged.len += r.len;
            merged.next = r.next;
            let prev = merged.prev;
            symbols[c.right as usize].len = 0;
            if r.next != NONE {
                symbols[r.next as usize].prev = c.left;
            }
            if prev != NONE {
                push(&mut queue, &symbols, prev);
            }
            push(&mut queue, &symbols, c.left);
        }

        let mut at = 0;
        while at != NONE {
            let s = symbols[at as usize];
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            // A merged symbol is always a vocabulary entry; only single characters
            // can be missing, and those are spelled byte by byte.
            match vocab.id(piece) {
                Some(id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.byte_tokens[b as usize].or(self.unk) {
                            out.push(id);
                        }
                    }
                }
            }
            at = s.next;
        }
    }
}
