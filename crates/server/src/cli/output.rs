//! What the client prints: aligned tables and short summaries for people, the API's JSON for scripts, log lines as
//! they come. Writes that fail (a closed pipe: `agent-dashboard ls | head -1`) are ignored: the reader left.

use std::io::Write;

use dashboard_core::{Approval, Execution, Function, LogLine, LogStream, now};
use serde::Serialize;

/// The longest cell of a free-text column (descriptions, summaries) in a table.
const TEXT_CELL_CHARS: usize = 60;

/// Standard output and standard error.
pub struct Output {
    /// Tables, JSON and log lines.
    pub stdout: Box<dyn Write>,
    /// `stderr`-stream log lines and summaries of how things went.
    pub stderr: Box<dyn Write>,
}

impl Output {
    /// The process's own.
    pub fn standard() -> Self {
        Self { stdout: Box::new(std::io::stdout()), stderr: Box::new(std::io::stderr()) }
    }

    /// A line on standard output.
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.stdout, "{text}");
        let _ = self.stdout.flush();
    }

    /// A line on standard error.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.stderr, "{text}");
    }

    /// A value as the API's pretty JSON.
    pub fn json(&mut self, value: &impl Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.line(&text),
            Err(error) => self.note(&format!("agent-dashboard: could not write JSON: {error}")),
        }
    }

    /// A value as one line of JSON (a followed log with `--json`).
    pub fn json_line(&mut self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(text) => self.line(&text),
            Err(error) => self.note(&format!("agent-dashboard: could not write JSON: {error}")),
        }
    }

    /// A log line: a `stderr` line on standard error, a `system` line marked, the others as they are.
    pub fn log_line(&mut self, line: &LogLine) {
        match line.stream {
            LogStream::Stderr => {
                let _ = writeln!(self.stderr, "{}", line.message);
            }
            LogStream::System => self.line(&format!("[system] {}", line.message)),
            _ => self.line(&line.message),
        }
    }

    /// A table with a header, each column as wide as its widest cell.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = header.iter().map(|cell| (*cell).to_owned()).collect();
        for row in std::iter::once(&header).chain(rows) {
            let cells: Vec<String> =
                row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            self.line(cells.join("  ").trim_end());
        }
    }
}

/// The functions as a table.
pub fn functions_table(output: &mut Output, functions: &[Function]) {
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|function| {
            vec![
                function.name.clone(),
                function.backend.clone(),
                function.version.to_string(),
                cut(&function.description),
            ]
        })
        .collect();
    output.table(&["NAME", "BACKEND", "VERSION", "DESCRIPTION"], &rows);
}

/// Executions as a table, newest first as the API lists them.
pub fn executions_table(output: &mut Output, executions: &[Execution]) {
    let rows: Vec<Vec<String>> = executions
        .iter()
        .map(|execution| {
            vec![
                execution.id.to_string(),
                execution.function.clone(),
                execution.status.to_string(),
                execution.backend.clone(),
                timestamp(execution.created_at),
                duration(execution),
            ]
        })
        .collect();
    output.table(&["ID", "FUNCTION", "STATUS", "BACKEND", "CREATED", "DURATION"], &rows);
}

/// The pending approvals as a table.
pub fn approvals_table(output: &mut Output, approvals: &[Approval]) {
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|approval| {
            vec![
                approval.id.to_string(),
                approval.execution_id.to_string(),
                approval.function.clone(),
                approval.kind.as_str().to_owned(),
                cut(&approval.summary),
                timestamp(approval.expires_at),
            ]
        })
        .collect();
    output.table(&["ID", "EXECUTION", "FUNCTION", "KIND", "SUMMARY", "EXPIRES"], &rows);
}

/// One execution, field by field, with its output or error.
pub fn execution_details(output: &mut Output, execution: &Execution) {
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let fields = [
        ("id", execution.id.to_string()),
        ("function", format!("{} (version {})", execution.function, execution.function_version)),
        ("backend", execution.backend.clone()),
        ("status", execution.status.to_string()),
        ("attempt", execution.attempt.to_string()),
        ("triggered by", optional(&execution.triggered_by)),
        ("session", optional(&execution.session_id)),
        ("created", timestamp(execution.created_at)),
        ("started", execution.started_at.map_or_else(|| "-".to_owned(), timestamp)),
        ("finished", execution.finished_at.map_or_else(|| "-".to_owned(), timestamp)),
        ("duration", duration(execution)),
        ("input", execution.input.to_string()),
    ];
    for (name, value) in fields {
        output.line(&format!("{:<13}{value}", format!("{name}:")));
    }
    if let Some(error) = &execution.error {
        output.line(&format!("{:<13}{error}", "error:"));
    }
    if let Some(result) = &execution.output {
        let text = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
        output.line(&format!("output:\n{text}"));
    }
}

/// One line on how an execution ended (or stands): `hello-agent 0190… succeeded in 1.2s`, with the error.
pub fn summary(execution: &Execution) -> String {
    let mut text = format!("{} {} {}", execution.function, execution.id, execution.status);
    if execution.started_at.is_some() {
        text.push_str(&format!(" in {}", duration(execution)));
    }
    if let Some(error) = &execution.error {
        text.push_str(&format!(": {error}"));
    }
    text
}

/// A time as RFC 3339 to the second, in UTC.
fn timestamp(at: dashboard_core::Timestamp) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// How long it ran (so far), to a tenth of a second; `-` before it started.
fn duration(execution: &Execution) -> String {
    match execution.duration(now()) {
        Some(duration) => format!("{:.1}s", duration.as_seconds_f64().max(0.0)),
        None => "-".to_owned(),
    }
}

/// Free text cut to a table cell, on one line.
fn cut(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= TEXT_CELL_CHARS && !text.contains('\n') {
        return line.to_owned();
    }
    let kept: String = line.chars().take(TEXT_CELL_CHARS - 1).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_table_aligns_its_columns() {
        let stdout = Shared::default();
        let mut output = Output { stdout: Box::new(stdout.clone()), stderr: Box::new(std::io::sink()) };
        output.table(&["NAME", "N"], &[vec!["a".into(), "1".into()], vec!["longer".into(), "22".into()]]);
        let text = String::from_utf8(stdout.0.lock().expect("lock").clone()).expect("text");
        assert_eq!(text, "NAME    N\na       1\nlonger  22\n");
    }

    #[test]
    fn long_or_multiline_text_is_cut_to_one_cell() {
        assert_eq!(cut("short"), "short");
        assert_eq!(cut("first\nsecond"), "first…");
        let long = "x".repeat(100);
        assert_eq!(cut(&long).chars().count(), TEXT_CELL_CHARS);
    }
}
