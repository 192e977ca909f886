//! The chat formats llama.cpp has built in (`src/llama-chat.cpp`), used when a model
//! file has no `tokenizer.chat_template`: how each renders a conversation, and how
//! one is chosen.

use super::ChatMessage;

/// A built-in chat format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (Qwen, SmolLM, many others).
    ChatMl,
    /// Llama 2 `[INST] … [/INST]`, system text folded into the first turn.
    Llama2,
    /// Llama 2 with `<<SYS>>` system blocks.
    Llama2Sys,
    /// Llama 3 `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
    Llama3,
    /// Mistral v1: ` [INST] … [/INST]`.
    MistralV1,
    /// Mistral v3: `[INST] … [/INST]`, assistant text trimmed.
    MistralV3,
    /// Mistral v3 (Tekken vocabulary): no space after `[INST]`.
    MistralV3Tekken,
    /// Mistral v7: `[SYSTEM_PROMPT] … [/SYSTEM_PROMPT][INST] … [/INST]`.
    MistralV7,
    /// Mistral v7 (Tekken vocabulary): as v7 without the spaces.
    MistralV7Tekken,
    /// Gemma: `<start_of_turn>user\n…<end_of_turn>\n`, assistant called `model`,
    /// system text prepended to the first user turn.
    Gemma,
}

/// Every built-in with its llama.cpp name.
pub const BUILTINS: &[(&str, Builtin)] = &[
    ("chatml", Builtin::ChatMl),
    ("llama2", Builtin::Llama2),
    ("llama2-sys", Builtin::Llama2Sys),
    ("llama3", Builtin::Llama3),
    ("mistral-v1", Builtin::MistralV1),
    ("mistral-v3", Builtin::MistralV3),
    ("mistral-v3-tekken", Builtin::MistralV3Tekken),
    ("mistral-v7", Builtin::MistralV7),
    ("mistral-v7-tekken", Builtin::MistralV7Tekken),
    ("gemma", Builtin::Gemma),
];

impl Builtin {
    /// The built-in of a llama.cpp template name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        BUILTINS.iter().find(|(n, _)| *n == name).map(|&(_, b)| b)
    }

    /// The llama.cpp name.
    pub fn name(self) -> &'static str {
        BUILTINS
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |&(n, _)| n)
    }

    /// Recognises the format of a Jinja template by its marker strings, as
    /// llama.cpp's legacy (non-Jinja) path does; `None` when none matches.
    pub fn detect(template: &str) -> Option<Builtin> {
        if let Some(b) = Builtin::from_name(template) {
            return Some(b);
        }
        let has = |s: &str| template.contains(s);
        if has("<|im_start|>") {
            return (!has("<|im_sep|>") && !has("<end_of_utterance>")).then_some(Builtin::ChatMl);
        }
        if template.starts_with("mistral") || has("[INST]") {
            if has("[SYSTEM_PROMPT]") {
                return Some(Builtin::MistralV7);
            }
            if has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]") {
                return Some(if has(" [INST]") {
                    Builtin::MistralV1
                } else if has("\"[INST]\"") {
                    Builtin::MistralV3Tekken
                } else {
                    Builtin::MistralV3
                });
            }
            return Some(if has("<<SYS>>") {
                Builtin::Llama2Sys
            } else {
                Builtin::Llama2
            });
        }
        if has("<start_of_turn>") {
            return Some(Builtin::Gemma);
        }
        if has("<|start_header_id|>") && has("<|end_header_id|>") {
            return Some(Builtin::Llama3);
        }
        None
    }

    /// Chooses a format for a model without a template from the turn markers its
    /// vocabulary has (the same markers [`detect`](Self::detect) looks for in a
    /// template), falling back to ChatML, llama.cpp's default.
    pub fn for_vocabulary(has_token: impl Fn(&str) -> bool, model_name: &str) -> Builtin {
        if has_token("<start_of_turn>") && has_token("<end_of_turn>") {
            Builtin::Gemma
        } else if has_token("<|start_header_id|>") && has_token("<|end_header_id|>") {
            Builtin::Llama3
        } else if has_token("<|im_start|>") && has_token("<|im_end|>") {
            Builtin::ChatMl
        } else if has_token("[SYSTEM_PROMPT]") && has_token("[INST]") {
            Builtin::MistralV7
        } else if has_token("[INST]") && has_token("[/INST]") {
            Builtin::MistralV3
        } else if model_name.to_ascii_lowercase().contains("mistral") {
            Builtin::MistralV1
        } else if model_name.to_ascii_lowercase().contains("llama") && has_token("</s>") {
            Builtin::Llama2
        } else {
            Builtin::ChatMl
        }
    }

    /// Renders a conversation; `add_generation_prompt` opens the assistant's turn.
    pub fn render(self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        match self {
            Builtin::ChatMl => {
                for m in messages {
                    out += &format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content);
                }
                if add_generation_prompt {
                    out += "<|im_start|>assistant\n";
                }
            }
            Builtin::Llama2 | Builtin::Llama2Sys => {
                let with_sys = self == Builtin::Llama2Sys;
                let mut in_turn = true;
                out += "[INST] ";
                for m in messages {
                    if !in_turn {
                        in_turn = true;
                        out += "[INST] ";
                    }
                    match m.role.as_str() {
                        "system" if with_sys => {
                            out += &format!("<<SYS>>\n{}\n<</SYS>>\n\n", m.content)
                        }
                        "system" => out += &format!("{}\n", m.content),
                        "user" => out += &format!("{} [/INST]", m.content),
                        _ => {
                            out += &format!("{}</s>", m.content);
                            in_turn = false;
                        }
                    }
                }
            }
            Builtin::Llama3 => {
                for m in messages {
                    out += &format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        trim_ascii(&m.content)
                    );
                }
                if add_generation_prompt {
                    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
                }
            }
            Builtin::MistralV1 | Builtin::MistralV3 | Builtin::MistralV3Tekken => {
                let lead = if self == Builtin::MistralV1 { " " } else { "" };
                let trail = if self == Builtin::MistralV3Tekken {
                    ""
                } else {
                    " "
                };
                let mut in_turn = false;
                for m in messages {
                    if !in_turn {
                        out += &format!("{lead}[INST]{trail}");
                        in_turn = true;
                    }
                    match m.role.as_str() {
                        "system" => out += &format!("{}\n\n", m.content),
                        "user" => out += &format!("{}{lead}[/INST]", m.content),
                        _ => {
                            let content = if self == Builtin::MistralV3 {
                                trim_ascii(&m.content)
                            } else {
                                &m.content
                            };
                            out += &format!("{trail}{content}</s>");
                            in_turn = false;
                        }
                    }
                }
            }
            Builtin::MistralV7 | Builtin::MistralV7Tekken => {
                let sp = if self == Builtin::MistralV7 { " " } else { "" };
                for m in messages {
                    match m.role.as_str() {
                        "system" => {
                            out += &format!("[SYSTEM_PROMPT]{sp}{}[/SYSTEM_PROMPT]", m.content)
                        }
                        "user" => out += &format!("[INST]{sp}{}[/INST]", m.content),
                        _ => out += &format!("{sp}{}</s>", m.content),
                    }
                }
            }
            Builtin::Gemma => {
                // Gemma has no system role: system text goes before the next user turn.
                let mut system = String::new();
                for m in messages {
                    if m.role == "system" {
                        system += trim_ascii(&m.content);
                        continue;
                    }
                    let role = if m.role == "assistant" {
                        "model"
                    } else {
                        m.role.as_str()
                    };
                    out += &format!("<start_of_turn>{role}\n");
                    if !system.is_empty() && role != "model" {
                        out += &format!("{system}\n\n");
                        system.clear();
                    }
                    out += &format!("{}<end_of_turn>\n", trim_ascii(&m.content));
                }
                if add_generation_prompt {
                    out += "<start_of_turn>model\n";
                }
            }
        }
        out
    }
}

/// Trims ASCII whitespace only, as llama.cpp's C `isspace` trim does.
fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
}
