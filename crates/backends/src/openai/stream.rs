//! Reading an OpenAI-compatible event stream: what each Chat Completions chunk or Responses event means for the run,
//! and the buffer that turns text deltas into whole log lines. Unknown events and fields are tolerated.

use serde_json::Value;

use crate::limits::LOG_LINE_BYTES;

/// What one server-sent event means for the run.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Effect {
    /// The model wrote this text.
    Text(String),
    /// Token usage, as the server reports it.
    Usage(Value),
    /// The model the server says is answering.
    Model(String),
    /// The server reported an error: this message is the run's error.
    Failed(String),
    /// The answer is complete.
    Done,
}

/// Interprets one Chat Completions chunk (`data: {...}` or `data: [DONE]`).
pub(super) fn interpret_chat(data: &str) -> Vec<Effect> {
    if data.trim() == "[DONE]" {
        return vec![Effect::Done];
    }
    let Some(chunk) = parse(data) else { return Vec::new() };
    if let Some(error) = chunk.get("error").filter(|error| !error.is_null()) {
        return vec![Effect::Failed(
            error_text(error).unwrap_or("the model server reported an error").to_owned(),
        )];
    }
    let mut effects = Vec::new();
    if let Some(model) = text(&chunk, "model").filter(|model| !model.is_empty()) {
        effects.push(Effect::Model(model.to_owned()));
    }
    // Only the first choice is read: the request never asks for more than one.
    let delta =
        chunk.get("choices").and_then(|choices| choices.get(0)).and_then(|choice| choice.get("delta"));
    if let Some(content) =
        delta.and_then(|delta| text(delta, "content")).filter(|content| !content.is_empty())
    {
        effects.push(Effect::Text(content.to_owned()));
    }
    // Some servers send `"usage": null` on every chunk and the figures on the last one only.
    if let Some(usage) = chunk.get("usage").filter(|usage| usage.is_object()) {
        effects.push(Effect::Usage(usage.clone()));
    }
    effects
}

/// Interprets one Responses API event; `event_name` is the SSE `event:` field, used when the data has no `type`.
pub(super) fn interpret_responses(event_name: &str, data: &str) -> Vec<Effect> {
    let Some(event) = parse(data) else { return Vec::new() };
    let kind = text(&event, "type").unwrap_or(event_name);
    let response = event.get("response");
    match kind {
        "response.output_text.delta" => match text(&event, "delta").filter(|delta| !delta.is_empty()) {
            Some(delta) => vec![Effect::Text(delta.to_owned())],
            None => Vec::new(),
        },
        "response.completed" => {
            let mut effects = Vec::new();
            if let Some(model) = response.and_then(|response| text(response, "model")) {
                effects.push(Effect::Model(model.to_owned()));
            }
            if let Some(usage) =
                response.and_then(|response| response.get("usage")).filter(|usage| usage.is_object())
            {
                effects.push(Effect::Usage(usage.clone()));
            }
            effects.push(Effect::Done);
            effects
        }
        "response.failed" => {
            let message = response.and_then(|response| response.get("error")).and_then(error_text);
            vec![Effect::Failed(message.unwrap_or("the response failed").to_owned())]
        }
        "response.incomplete" => {
            let reason = response
                .and_then(|response| response.get("incomplete_details"))
                .and_then(|details| text(details, "reason"))
                .unwrap_or("no reason given");
            vec![Effect::Failed(format!("the response is incomplete: {reason}"))]
        }
        "error" => {
            let message = text(&event, "message").or_else(|| event.get("error").and_then(error_text));
            vec![Effect::Failed(message.unwrap_or("the model server reported an error").to_owned())]
        }
        _ => Vec::new(),
    }
}

fn parse(data: &str) -> Option<Value> {
    match serde_json::from_str(data) {
        Ok(value) => Some(value),
        Err(error) => {
            log::debug!("ignoring an event that is not JSON ({error})");
            None
        }
    }
}

/// The message of an error value: `{"message": "..."}` or a bare string.
fn error_text(error: &Value) -> Option<&str> {
    text(error, "message").or_else(|| error.as_str())
}

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// Collects text deltas and hands them back a whole line at a time, so the log gets a line per line of text rather
/// than a line per token. A line longer than a log line is handed back in pieces of at most that length, cut on
/// character boundaries, so the buffer never holds more than one log line.
///
/// Its work is linear in the text: each delta is searched for line breaks once, on its own, and each byte is copied
/// once into the buffer; nothing already buffered is looked at again.
#[derive(Debug)]
pub(super) struct LineBuffer {
    partial: String,
    max_line_bytes: usize,
    /// How many bytes the search for line breaks has looked at, over the buffer's life.
    n_scanned: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new(LOG_LINE_BYTES)
    }
}

impl LineBuffer {
    /// A buffer that hands back lines of at most `max_line_bytes` (at least 4, so any character fits).
    pub(super) fn new(max_line_bytes: usize) -> Self {
        Self { partial: String::new(), max_line_bytes: max_line_bytes.max(4), n_scanned: 0 }
    }

    /// Adds a delta; answers the lines it completed (without their line breaks) and the pieces of overlong ones.
    pub(super) fn push(&mut self, delta: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = delta;
        loop {
            let found = rest.find('\n');
            self.n_scanned += found.map_or(rest.len(), |index| index + 1);
            let Some(index) = found else {
                self.append(rest, &mut lines);
                return lines;
            };
            self.append(&rest[..index], &mut lines);
            let mut line = std::mem::take(&mut self.partial);
            if line.ends_with('\r') {
                line.pop();
            }
            lines.push(line);
            rest = &rest[index + 1..];
        }
    }

    /// Adds text without line breaks, handing back a piece whenever the line reaches the limit.
    fn append(&mut self, mut text: &str, lines: &mut Vec<String>) {
        loop {
            let room = self.max_line_bytes - self.partial.len();
            if text.len() <= room {
                self.partial.push_str(text);
                return;
            }
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.partial.push_str(&text[..cut]);
            lines.push(std::mem::take(&mut self.partial));
            text = &text[cut..];
        }
    }

    /// The unfinished last line, if there is one.
    pub(super) fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.partial);
        if rest.is_empty() { None } else { Some(rest) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lines_of(deltas: &[&str]) -> Vec<String> {
        let mut buffer = LineBuffer::default();
        let mut lines: Vec<String> = deltas.iter().flat_map(|delta| buffer.push(delta)).collect();
        lines.extend(buffer.finish());
        lines
    }

    #[test]
    fn deltas_become_whole_lines() {
        assert_eq!(lines_of(&["Hel", "lo\nwor", "ld"]), ["Hello", "world"]);
        assert_eq!(lines_of(&["a\r\n", "b\n"]), ["a", "b"]);
        assert_eq!(lines_of(&["one\n\ntwo\nthr", "ee\n"]), ["one", "", "two", "three"]);
        assert_eq!(lines_of(&["no line break"]), ["no line break"]);
        assert!(lines_of(&[]).is_empty());
    }

    #[test]
    fn an_overlong_line_comes_in_pieces_cut_on_character_boundaries() {
        let mut buffer = LineBuffer::new(8);
        assert_eq!(buffer.push("abcdefghij"), ["abcdefgh"]);
        // "é" is two bytes: it does not fit after "ij" + "abcde" (7 of 8 bytes), so it begins the next piece.
        assert_eq!(buffer.push("abcdeé"), ["ijabcde"]);
        assert_eq!(buffer.push("é\nxy"), ["éé"]);
        assert_eq!(buffer.finish().as_deref(), Some("xy"));
    }

    /// A long answer in small deltas without a line break is read in linear work: every byte is searched once, and
    /// the buffer never holds more than a log line. (Searching the whole buffer on each delta, as this buffer once
    /// did, looks at ~n²/8 bytes here: 128 GiB for a 1 MiB answer.)
    #[test]
    fn small_deltas_without_line_breaks_cost_linear_work() {
        let mut buffer = LineBuffer::default();
        let (delta, n_deltas) = ("abcd", 256 * 1024);
        let mut pieces = Vec::new();
        for _ in 0..n_deltas {
            pieces.extend(buffer.push(delta));
            assert!(buffer.partial.len() <= LOG_LINE_BYTES);
        }
        pieces.extend(buffer.finish());
        let total = delta.len() * n_deltas;
        assert_eq!(buffer.n_scanned, total);
        assert_eq!(pieces.len(), total / LOG_LINE_BYTES);
        assert!(pieces.iter().all(|piece| piece.len() == LOG_LINE_BYTES));
        assert_eq!(pieces.concat().len(), total);
    }

    #[test]
    fn chat_chunks() {
        let check = |data: &str, expected: Vec<Effect>| assert_eq!(interpret_chat(data), expected, "{data}");
        check("[DONE]", vec![Effect::Done]);
        check(
            r#"{"model":"m1","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#,
            vec![Effect::Model("m1".into()), Effect::Text("Hi".into())],
        );
        check(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#, vec![]);
        check(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            vec![Effect::Usage(json!({"prompt_tokens": 3, "completion_tokens": 2}))],
        );
        check(r#"{"error":{"message":"overloaded"}}"#, vec![Effect::Failed("overloaded".into())]);
        check(r#"{"error":"bad things"}"#, vec![Effect::Failed("bad things".into())]);
        check("not json", vec![]);
    }

    #[test]
    fn responses_events() {
        let check = |name: &str, data: &str, expected: Vec<Effect>| {
            assert_eq!(interpret_responses(name, data), expected, "{data}");
        };
        check("", r#"{"type":"response.output_text.delta","delta":"Hi"}"#, vec![Effect::Text("Hi".into())]);
        check("response.output_text.delta", r#"{"delta":"Hi"}"#, vec![Effect::Text("Hi".into())]);
        check(
            "",
            r#"{"type":"response.completed","response":{"model":"m2","usage":{"input_tokens":5}}}"#,
            vec![Effect::Model("m2".into()), Effect::Usage(json!({"input_tokens": 5})), Effect::Done],
        );
        check(
            "",
            r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"boom"}}}"#,
            vec![Effect::Failed("boom".into())],
        );
        check(
            "",
            r#"{"type":"response.incomplete","response":{"incomplete_details":{"reason":"max_output_tokens"}}}"#,
            vec![Effect::Failed("the response is incomplete: max_output_tokens".into())],
        );
        check(
            "",
            r#"{"type":"error","message":"rate limited"}"#,
            vec![Effect::Failed("rate limited".into())],
        );
        check("", r#"{"type":"response.reasoning_summary_text.delta","delta":"hmm"}"#, vec![]);
    }
}
