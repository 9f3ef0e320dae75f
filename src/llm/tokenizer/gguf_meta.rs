//! Typed reads of GGUF metadata values, with errors that name the key.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::llm::error::{LlmError, Result};

fn gguf_value_kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Bool(_) => "a bool",
        Value::F32(_) | Value::F64(_) => "a float",
        _ => "an integer",
    }
}

fn gguf_type_error(key: &str, want: &str, value: &Value) -> LlmError {
    LlmError::Tokenizer(format!(
        "GGUF {key} should be {want} but is {}",
        gguf_value_kind(value)
    ))
}

pub(super) fn gguf_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(gguf_type_error(key, "a string", other)),
    }
}

pub(super) fn gguf_bool(md: &HashMap<String, Value>, key: &str) -> Result<Option<bool>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => match value_as_i64(other) {
            Some(i) => Ok(Some(i != 0)),
            None => Err(gguf_type_error(key, "a bool", other)),
        },
    }
}

pub(super) fn value_as_i64(value: &Value) -> Option<i64> {
    Some(match *value {
        Value::U8(v) => v.into(),
        Value::I8(v) => v.into(),
        Value::U16(v) => v.into(),
        Value::I16(v) => v.into(),
        Value::U32(v) => v.into(),
        Value::I32(v) => v.into(),
        Value::U64(v) => i64::try_from(v).ok()?,
        Value::I64(v) => v,
        _ => return None,
    })
}

pub(super) fn gguf_int(md: &HashMap<String, Value>, key: &str) -> Result<Option<i64>> {
    match md.get(key) {
        None => Ok(None),
        Some(value) => value_as_i64(value)
            .map(Some)
            .ok_or_else(|| gguf_type_error(key, "an integer", value)),
    }
}

pub(super) fn gguf_str_array<'a>(
    md: &'a HashMap<String, Value>,
    key: &str,
) -> Result<Option<Vec<&'a str>>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.as_str()),
                other => Err(gguf_type_error(key, "an array of strings", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(other) => Err(gguf_type_error(key, "an array of strings", other)),
    }
}

pub(super) fn gguf_int_array(md: &HashMap<String, Value>, key: &str) -> Result<Option<Vec<i64>>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                value_as_i64(item).ok_or_else(|| gguf_type_error(key, "an array of integers", item))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(other) => Err(gguf_type_error(key, "an array of integers", other)),
    }
}

/// An array of numbers as `f32` (`tokenizer.ggml.scores`).
pub(super) fn gguf_f32_array(md: &HashMap<String, Value>, key: &str) -> Result<Option<Vec<f32>>> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match *item {
                Value::F32(v) => Ok(v),
                Value::F64(v) => Ok(v as f32),
                ref other => value_as_i64(other)
                    .map(|v| v as f32)
                    .ok_or_else(|| gguf_type_error(key, "an array of numbers", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(other) => Err(gguf_type_error(key, "an array of numbers", other)),
    }
}
