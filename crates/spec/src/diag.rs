//! Located diagnostics: what every input problem turns into.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::yaml::Pos;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops the command: nothing is sent to AWS.
    Error,
    /// Worth reading; the command goes on.
    Warning,
}

/// One input file, kept for locating and quoting diagnostics.
#[derive(Debug)]
pub struct SourceFile {
    /// How the file is shown to the user (`specs/mc.yaml`, `<stdin>`).
    pub name: String,
    /// The text, when it was valid UTF-8.
    pub text: String,
}

impl SourceFile {
    /// The text of a 1-based line, if it exists.
    pub fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

/// A problem in the input, with where it is, which key, what was expected and a hint.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File name as shown to the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Key path such as `spec.volumes.data.paths[0].path`; empty for the whole document.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The source line, quoted under the message.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// An error at a position of a file.
    pub fn error(
        file: &Arc<SourceFile>,
        pos: Pos,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.name.clone(),
            line: pos.line,
            col: pos.col,
            path: path.into(),
            message: message.into(),
            hint: None,
            source_line: file.line(pos.line).map(str::to_string),
        }
    }

    /// The same diagnostic as a warning.
    pub fn warning(self) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..self
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds an optional hint.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: path: message`, the source line with a caret, and the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {severity}: ", self.file, self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string().len();
            let caret_pad: String = src
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{:gutter$} |\n{} | {src}\n{:gutter$} | {caret_pad}^",
                "", self.line, ""
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Sorts diagnostics by file, position and severity, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.col, a.severity).cmp(&(&b.file, b.line, b.col, b.severity))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_path_source_caret_and_hint() {
        let file = Arc::new(SourceFile {
            name: "specs/mc.yaml".into(),
            text: "spec:\n  watchdog:\n    minutesWithoutConnections: 0\n".into(),
        });
        let d = Diagnostic::error(
            &file,
            Pos { line: 3, col: 32 },
            "spec.watchdog.minutesWithoutConnections",
            "expected 1 to 1440 minutes, got 0",
        )
        .with_hint("CloudWatch evaluates at most one day");
        let text = d.to_string();
        assert_eq!(
            text,
            "specs/mc.yaml:3:32: error: spec.watchdog.minutesWithoutConnections: expected 1 to 1440 minutes, got 0\n  |\n3 |     minutesWithoutConnections: 0\n  |                                ^\n  = hint: CloudWatch evaluates at most one day"
        );
    }
}
