//! Chat prompts: which family's format a chat template writes, and that format rendered for one
//! user message.
//!
//! The format is recognised from the template's text (its turn markers), not by evaluating the
//! Jinja: every family's template writes its markers as literals, and one user message (plus an
//! optional system prompt) is all a prompt needs. What varies inside a family and changes the
//! prompt is read from the template too: ChatML's default system prompt, Llama 3.1's dated
//! system header, Mistral's space before `[/INST]`. `tests/spm_tokenizer.rs` checks every family
//! against transformers' rendering of its template.

/// The chat formats [`super::Tokenizer::chat_prompt`] can render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n` turns (SmolLM2, Qwen2, Qwen3, ...).
    ChatMl,
    /// `<start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n` (Gemma 1-3); the system
    /// prompt opens the first user turn.
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>` (Llama 3, 3.1, 3.2).
    Llama3,
    /// `<|user|>\n...<|end|>\n<|assistant|>\n` (Phi-3, Phi-3.5).
    Phi3,
    /// `[INST] ... [/INST]` (Mistral, Mixtral, Llama 2).
    Mistral,
}

impl ChatFormat {
    /// What follows a turn's end token to open another assistant turn (empty where the format
    /// has no assistant marker: Mistral's model simply goes on).
    pub fn next_turn(self) -> &'static str {
        match self {
            Self::ChatMl => "\n<|im_start|>assistant\n",
            Self::Gemma => "\n<start_of_turn>model\n",
            Self::Llama3 => "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Self::Phi3 => "\n<|assistant|>\n",
            Self::Mistral => "",
        }
    }

    /// The tokens that end the assistant's turn in this format; a vocabulary that has them
    /// stops a generation on them (besides its EOS).
    pub fn stop_markers(self) -> &'static [&'static str] {
        match self {
            Self::ChatMl => &["<|im_end|>"],
            Self::Gemma => &["<end_of_turn>"],
            Self::Llama3 => &["<|eot_id|>", "<|eom_id|>"],
            Self::Phi3 => &["<|end|>"],
            Self::Mistral => &["</s>"],
        }
    }
}

/// A chat format with what its template adds around the turns.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    pub format: ChatFormat,
    /// The system prompt written when the conversation has none (Qwen2.5, SmolLM2).
    pub default_system: Option<String>,
    /// Does the template write `bos_token` first?
    pub writes_bos: bool,
    /// Llama 3.1's system header, always written: "Cutting Knowledge Date: ...\nToday Date: ...".
    pub dated_system: Option<String>,
    /// Mistral v0.1/v0.2 and Llama 2 write `' [/INST]'`, Mistral v0.3 `'[/INST]'`.
    pub space_before_inst_end: bool,
    /// Llama 2 wraps the system prompt in `<<SYS>>\n...\n<</SYS>>\n\n` and strips the
    /// message it opens.
    pub llama2_system: bool,
    /// Does the `[INST]` template strip the message (`content.strip()`)?
    pub strips_message: bool,
}

impl ChatTemplate {
    /// The format `template` writes; `None` for one we cannot render (raw prompts then).
    pub fn detect(template: &str) -> Option<Self> {
        let format = if template.contains("<|im_start|>") {
            ChatFormat::ChatMl
        } else if template.contains("<start_of_turn>") {
            ChatFormat::Gemma
        } else if template.contains("<|start_header_id|>") {
            ChatFormat::Llama3
        } else if template.contains("<|user|>") && template.contains("<|assistant|>") {
            ChatFormat::Phi3
        } else if template.contains("[INST]") {
            ChatFormat::Mistral
        } else {
            return None;
        };
        Some(Self {
            format,
            default_system: match format {
                ChatFormat::ChatMl => chatml_default_system(template),
                _ => None,
            },
            writes_bos: template.contains("bos_token"),
            dated_system: match format {
                ChatFormat::Llama3 => llama3_dated_system(template),
                _ => None,
            },
            space_before_inst_end: template.contains(" [/INST]"),
            llama2_system: template.contains("<<SYS>>"),
            strips_message: template.contains(".strip()"),
        })
    }

    /// ChatML without a template (a vocabulary with `<|im_start|>` and `<|im_end|>`).
    pub fn chatml() -> Self {
        Self {
            format: ChatFormat::ChatMl,
            default_system: None,
            writes_bos: false,
            dated_system: None,
            space_before_inst_end: false,
            llama2_system: false,
            strips_message: false,
        }
    }

    /// One user message (and a system prompt: `system`, else the template's default) as the
    /// template renders it with `add_generation_prompt`. `bos` is the BOS token's text, written
    /// first when the template writes `bos_token`.
    pub fn render(&self, bos: Option<&str>, system: Option<&str>, user: &str) -> String {
        let system = system.or(self.default_system.as_deref());
        let mut out = String::new();
        if self.writes_bos {
            out.push_str(bos.unwrap_or_default());
        }
        match self.format {
            ChatFormat::ChatMl => {
                if let Some(system) = system {
                    out.push_str("<|im_start|>system\n");
                    out.push_str(system);
                    out.push_str("<|im_end|>\n");
                }
                out.push_str("<|im_start|>user\n");
                out.push_str(user);
                out.push_str("<|im_end|>\n<|im_start|>assistant\n");
            }
            ChatFormat::Gemma => {
                // Gemma has no system role: the system prompt opens the first user turn, and
                // message contents are trimmed (the prefix is not).
                out.push_str("<start_of_turn>user\n");
                if let Some(system) = system {
                    out.push_str(system);
                    out.push_str("\n\n");
                }
                out.push_str(user.trim());
                out.push_str("<end_of_turn>\n<start_of_turn>model\n");
            }
            ChatFormat::Llama3 => {
                let header = "<|start_header_id|>system<|end_header_id|>\n\n";
                match (&self.dated_system, system) {
                    (Some(dated), system) => {
                        out.push_str(header);
                        out.push_str(dated);
                        out.push_str(system.map(str::trim).unwrap_or_default());
                        out.push_str("<|eot_id|>");
                    }
                    (None, Some(system)) => {
                        out.push_str(header);
                        out.push_str(system.trim());
                        out.push_str("<|eot_id|>");
                    }
                    (None, None) => {}
                }
                out.push_str("<|start_header_id|>user<|end_header_id|>\n\n");
                out.push_str(user.trim());
                out.push_str("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
            }
            ChatFormat::Phi3 => {
                if let Some(system) = system {
                    out.push_str("<|system|>\n");
                    out.push_str(system);
                    out.push_str("<|end|>\n");
                }
                out.push_str("<|user|>\n");
                out.push_str(user);
                out.push_str("<|end|>\n<|assistant|>\n");
            }
            ChatFormat::Mistral => {
                // v0.3 puts the system prompt before the last user message; v0.1 refuses a
                // system message, and gets the same here. Llama 2 wraps it in <<SYS>>.
                self.push_inst(&mut out, system, user);
            }
        }
        out
    }
}

/// Who wrote a message of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

impl ChatTemplate {
    /// A whole conversation as the template renders it with `add_generation_prompt`: the
    /// opening of the assistant's next turn last. A system message first is the system prompt
    /// (else the template's default); for one user message (after an optional system one) this
    /// is exactly [`ChatTemplate::render`]. Beyond that the turns follow each family's
    /// markers; a system message later on is written as ChatML's own role and as a user turn
    /// in the formats without one in mid-conversation.
    pub fn render_conversation(&self, bos: Option<&str>, messages: &[(ChatRole, &str)]) -> String {
        let (system, turns) = match messages.split_first() {
            Some(((ChatRole::System, text), rest)) => (Some(*text), rest),
            _ => (None, messages),
        };
        if let [(ChatRole::User, user)] = turns {
            return self.render(bos, system, user);
        }
        let system = system.or(self.default_system.as_deref());
        let mut out = String::new();
        if self.writes_bos {
            out.push_str(bos.unwrap_or_default());
        }
        let role_name = |role: ChatRole| match role {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        };
        match self.format {
            ChatFormat::ChatMl => {
                let system = system.map(|s| (ChatRole::System, s));
                for (role, text) in system.iter().chain(turns) {
                    out.push_str("<|im_start|>");
                    out.push_str(role_name(*role));
                    out.push('\n');
                    out.push_str(text);
                    out.push_str("<|im_end|>\n");
                }
                out.push_str("<|im_start|>assistant\n");
            }
            ChatFormat::Gemma => {
                for (i, (role, text)) in turns.iter().enumerate() {
                    out.push_str("<start_of_turn>");
                    out.push_str(if *role == ChatRole::Assistant {
                        "model"
                    } else {
                        "user"
                    });
                    out.push('\n');
                    if let (0, Some(system)) = (i, system) {
                        out.push_str(system);
                        out.push_str("\n\n");
                    }
                    out.push_str(text.trim());
                    out.push_str("<end_of_turn>\n");
                }
                out.push_str("<start_of_turn>model\n");
            }
            ChatFormat::Llama3 => {
                let header = "<|start_header_id|>system<|end_header_id|>\n\n";
                if self.dated_system.is_some() || system.is_some() {
                    out.push_str(header);
                    out.push_str(self.dated_system.as_deref().unwrap_or_default());
                    out.push_str(system.map(str::trim).unwrap_or_default());
                    out.push_str("<|eot_id|>");
                }
                for (role, text) in turns {
                    out.push_str("<|start_header_id|>");
                    out.push_str(role_name(*role));
                    out.push_str("<|end_header_id|>\n\n");
                    out.push_str(text.trim());
                    out.push_str("<|eot_id|>");
                }
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
            ChatFormat::Phi3 => {
                let system = system.map(|s| (ChatRole::System, s));
                for (role, text) in system.iter().chain(turns) {
                    out.push_str("<|");
                    out.push_str(role_name(*role));
                    out.push_str("|>\n");
                    out.push_str(text);
                    out.push_str("<|end|>\n");
                }
                out.push_str("<|assistant|>\n");
            }
            ChatFormat::Mistral => {
                // The system prompt opens the first user message (Llama 2) or the last
                // (Mistral v0.3); answers close with the EOS.
                let last_user = turns.iter().rposition(|(r, _)| *r != ChatRole::Assistant);
                let first_user = turns.iter().position(|(r, _)| *r != ChatRole::Assistant);
                let with_system = if self.llama2_system {
                    first_user
                } else {
                    last_user
                };
                for (i, (role, text)) in turns.iter().enumerate() {
                    if *role == ChatRole::Assistant {
                        out.push(' ');
                        out.push_str(text.trim());
                        out.push_str("</s>");
                        continue;
                    }
                    let system = system.filter(|_| Some(i) == with_system);
                    self.push_inst(&mut out, system, text);
                }
            }
        }
        out
    }

    /// One Mistral / Llama 2 user turn, `[INST] … [/INST]`, with the system prompt (when
    /// given) inside it as this template writes it.
    fn push_inst(&self, out: &mut String, system: Option<&str>, user: &str) {
        let mut message = String::new();
        if let Some(system) = system {
            if self.llama2_system {
                message.push_str("<<SYS>>\n");
                message.push_str(system);
                message.push_str("\n<</SYS>>\n\n");
            } else {
                message.push_str(system);
                message.push_str("\n\n");
            }
        }
        message.push_str(user);
        out.push_str("[INST] ");
        out.push_str(if self.strips_message {
            message.trim()
        } else {
            &message
        });
        out.push_str(if self.space_before_inst_end {
            " [/INST]"
        } else {
            "[/INST]"
        });
    }
}

/// Llama 3.1's system header body: the knowledge cut-off line and today's date, with the
/// template's default date (`date_string`). `None` for Llama 3.0, which writes no header.
fn llama3_dated_system(template: &str) -> Option<String> {
    let knowledge_at = template.find("Cutting Knowledge Date:")?;
    let knowledge = literal_until_newline(&template[knowledge_at..]);
    let date = ["date_string = \"", "date_string = '"]
        .iter()
        .find_map(|start| {
            let at = template.find(start)? + start.len();
            let quote = start.chars().last()?;
            let end = template[at..].find(quote)?;
            Some(template[at..at + end].to_owned())
        })?;
    Some(format!("{knowledge}\nToday Date: {date}\n\n"))
}

/// A string literal's text up to its first newline (written `\n` in the Jinja or a real one).
fn literal_until_newline(text: &str) -> &str {
    let end = ["\\n", "\n", "\"", "'"]
        .iter()
        .filter_map(|stop| text.find(stop))
        .min()
        .unwrap_or(text.len());
    &text[..end]
}

/// The system prompt a ChatML template writes as a literal when the conversation has none:
/// the first `<|im_start|>system\n...<|im_end|>` whose body is plain text (no Jinja
/// expression, no string concatenation).
pub(super) fn chatml_default_system(template: &str) -> Option<String> {
    for marker in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
        let mut rest = template;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let Some(end) = rest.find("<|im_end|>") else {
                break;
            };
            let body = &rest[..end];
            if !body.is_empty() && is_plain_literal(body) {
                return Some(unescape_jinja(body));
            }
        }
    }
    None
}

fn is_plain_literal(body: &str) -> bool {
    let mut escaped = false;
    for c in body.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' | '"' | '{' | '}' | '+' | '~' => return false,
            _ => {}
        }
    }
    true
}

fn unescape_jinja(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_user_message_renders_as_the_single_message_prompt() {
        for template in [
            "<|im_start|>system\nYou are kind.<|im_end|>",
            "<start_of_turn>user",
            "{{ bos_token }}<|start_header_id|>",
            "<|user|> <|assistant|>",
            "{{ bos_token }}[INST] x [/INST]",
        ] {
            let chat = ChatTemplate::detect(template).expect("a known format");
            let bos = Some("<s>");
            assert_eq!(
                chat.render_conversation(bos, &[(ChatRole::User, "Hi")]),
                chat.render(bos, None, "Hi")
            );
            assert_eq!(
                chat.render_conversation(
                    bos,
                    &[(ChatRole::System, "Be brief."), (ChatRole::User, "Hi")]
                ),
                chat.render(bos, Some("Be brief."), "Hi")
            );
        }
    }

    #[test]
    fn chatml_writes_every_turn() {
        let chat = ChatTemplate::chatml();
        let text = chat.render_conversation(
            None,
            &[
                (ChatRole::User, "Hi"),
                (ChatRole::Assistant, "Hello!"),
                (ChatRole::User, "Sing."),
            ],
        );
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
             <|im_start|>user\nSing.<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
