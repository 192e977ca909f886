//! Rendering a model's Jinja chat template with minijinja the way llama.cpp's Jinja
//! mode does (`common/chat.cpp`, `common/jinja/`): `trim_blocks` and `lstrip_blocks`
//! on, one trailing newline of the template dropped, `\r\n` read as `\n`, Python
//! string methods available, and the globals `raise_exception`, `strftime_now` and
//! a Python-style `tojson`.

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

use super::strftime::{strftime, Civil};
use super::ChatMessage;
use crate::tokenizer::error::{Result, TokenizerError};

/// What a template is rendered with besides the messages.
#[derive(Debug, Clone)]
pub(crate) struct JinjaContext<'a> {
    pub bos_token: &'a str,
    pub eos_token: &'a str,
}

/// Renders `source` for `messages`.
pub(crate) fn render(
    source: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    ctx: &JinjaContext<'_>,
) -> Result<String> {
    let source = source.replace("\r\n", "\n").replace('\r', "\n");
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", |format: String| {
        strftime(&format, Civil::now())
    });
    env.add_filter("tojson", tojson);
    env.add_template("chat", &source)
        .map_err(|e| TokenizerError::Template(describe(&e)))?;
    let template = env
        .get_template("chat")
        .map_err(|e| TokenizerError::Template(describe(&e)))?;
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            Value::from_iter([
                ("role", Value::from(m.role.as_str())),
                ("content", Value::from(m.content.as_str())),
            ])
        })
        .collect();
    // llama.cpp defines add_generation_prompt only when it is true.
    let mut context = vec![
        ("messages", Value::from(messages)),
        ("bos_token", Value::from(ctx.bos_token)),
        ("eos_token", Value::from(ctx.eos_token)),
        ("enable_thinking", Value::from(true)),
    ];
    if add_generation_prompt {
        context.push(("add_generation_prompt", Value::from(true)));
    }
    let context = Value::from_iter(context);
    template
        .render(context)
        .map_err(|e| TokenizerError::Template(describe(&e)))
}

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("the template raised an exception: {message}"),
    ))
}

/// Python's `json.dumps` as templates use it: `", "` and `": "` separators (or
/// `","` with an indent), keys in insertion order, non-ASCII kept unless
/// `ensure_ascii=true`.
fn tojson(value: Value, args: Rest<Value>, kwargs: Kwargs) -> std::result::Result<Value, Error> {
    let positional = |i: usize| args.0.get(i).cloned();
    let indent: Option<Value> = kwargs
        .get::<Option<Value>>("indent")?
        .or_else(|| positional(0));
    let indent = match indent {
        Some(v) if v.kind() == ValueKind::Number => {
            i64::try_from(v).ok().map(|n| n.max(0) as usize)
        }
        Some(v) if v.kind() == ValueKind::String => v.as_str().map(|s| s.len()),
        _ => None,
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let separators: Option<Value> = kwargs.get("separators")?;
    let _: Option<Value> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let (mut item_sep, mut key_sep) = (
        if indent.is_some() { "," } else { ", " }.to_string(),
        ": ".to_string(),
    );
    if let Some(seps) = separators {
        let parts: Vec<Value> = seps.try_iter()?.collect();
        if let Some(s) = parts.first().and_then(|v| v.as_str()) {
            item_sep = s.to_string();
        }
        if let Some(s) = parts.get(1).and_then(|v| v.as_str()) {
            key_sep = s.to_string();
        }
    }
    let mut out = String::new();
    write_json(&value, indent, &item_sep, &key_sep, 0, &mut out)?;
    if ensure_ascii {
        out = out
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    c.encode_utf16(&mut [0; 2])
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                }
            })
            .collect();
    }
    Ok(Value::from_safe_string(out))
}

fn write_json(
    v: &Value,
    indent: Option<usize>,
    item_sep: &str,
    key_sep: &str,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&v.to_string()),
        ValueKind::String => out.push_str(
            &serde_json::to_string(v.as_str().unwrap_or_default())
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, item_sep, key_sep, depth + 1, out)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                let name = key.as_str().map_or_else(|| key.to_string(), str::to_string);
                out.push_str(
                    &serde_json::to_string(&name)
                        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?,
                );
                out.push_str(key_sep);
                write_json(&v.get_item(key)?, indent, item_sep, key_sep, depth + 1, out)?;
            }
            newline(out, depth);
            out.push('}');
        }
        _ => out.push_str(
            &serde_json::to_string(&v.to_string())
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?,
        ),
    }
    Ok(())
}
