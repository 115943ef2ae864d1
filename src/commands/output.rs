//! The one output place: an [`Outcome`] becomes lines on stdout and
//! stderr, a metrics record and an exit status. Writing never panics: a
//! closed stdout or stderr (EPIPE, EIO) loses the text, never the exit
//! status or the metrics.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::record::{self, Record};
use super::{exit, Ctx};
use crate::report::PREFIX;
use crate::text::{esc, esc_but_newlines};
use std::io::Write;

/// One piece of what a command tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// stdout, every line prefixed with the program name (hook reports).
    Say(String),
    /// stdout as is (the status table, JSON, the plugin line).
    Print(String),
    /// stderr, one line: `ssh-upgrade-guard: warning: ...`.
    Warning(String),
    /// stderr: `ssh-upgrade-guard: error: ...`.
    Error(String),
    /// An info-level log line (-v), kept in order with the lines around it.
    Info(String),
}

/// What a command concluded: what to tell (in order), what to record in the
/// counters and the metrics file, and the exit status.
#[must_use]
#[derive(Debug)]
pub struct Outcome {
    /// What to tell, in order.
    pub(crate) lines: Vec<Line>,
    /// What to record in the counters and the metrics file.
    pub(crate) record: Option<Record>,
    /// The exit status.
    pub(crate) exit: i32,
}

impl Outcome {
    /// Nothing to tell, this exit status.
    pub(crate) fn exit(code: i32) -> Outcome {
        Outcome {
            lines: Vec::new(),
            record: None,
            exit: code,
        }
    }

    /// The guard itself failed: the error on stderr, exit INTERNAL.
    pub(crate) fn failed(e: &anyhow::Error) -> Outcome {
        Outcome::exit(exit::INTERNAL).error(format!("{e:#}"))
    }

    /// Adds lines for stdout, each prefixed with the program name.
    pub(crate) fn say(mut self, text: impl Into<String>) -> Outcome {
        self.lines.push(Line::Say(text.into()));
        self
    }

    /// Adds text for stdout as is.
    pub(crate) fn print(mut self, text: impl Into<String>) -> Outcome {
        self.lines.push(Line::Print(text.into()));
        self
    }

    /// Adds a one-line warning for stderr.
    pub(crate) fn warn(mut self, text: impl Into<String>) -> Outcome {
        self.lines.push(Line::Warning(text.into()));
        self
    }

    /// Adds an error line for stderr.
    pub(crate) fn error(mut self, text: impl Into<String>) -> Outcome {
        self.lines.push(Line::Error(text.into()));
        self
    }

    /// Adds an info-level log line (-v).
    pub(crate) fn info(mut self, text: impl Into<String>) -> Outcome {
        self.lines.push(Line::Info(text.into()));
        self
    }

    /// Sets what to record.
    pub(crate) fn record(mut self, r: Record) -> Outcome {
        self.record = Some(r);
        self
    }

    /// Sets the exit status.
    pub(crate) fn with_exit(mut self, code: i32) -> Outcome {
        self.exit = code;
        self
    }
}

/// Writes one line to `w`; the error is returned, never a panic.
fn write_line(w: &mut impl Write, line: &Line) -> std::io::Result<()> {
    match line {
        // Control characters in names (a process name, a path, sshd's words)
        // are escaped: they never start a line of their own or move a
        // terminal's cursor. Text built of lines keeps its newlines.
        Line::Say(text) => {
            for l in text.lines() {
                writeln!(w, "{PREFIX}: {}", esc(l))?;
            }
        }
        Line::Print(text) => w.write_all(esc_but_newlines(text).as_bytes())?,
        // One line, whatever the error chain: apt and cron mail show it as is.
        Line::Warning(text) => writeln!(w, "{PREFIX}: warning: {}", esc(&text.replace('\n', " ")))?,
        Line::Error(text) => writeln!(w, "{PREFIX}: error: {}", esc(text))?,
        Line::Info(text) => {
            log::info!("{text}");
            return Ok(());
        }
    }
    w.flush()
}

/// The line for a panic outside the hooks (`internal error: ...`), from the
/// panic hook; the hooks tell theirs in their warning line. Never panics.
pub(crate) fn internal_error_line(line: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{PREFIX}: internal error: {}",
        esc(&line.replace('\n', " "))
    );
}

/// Renders the outcome: its lines to stdout/stderr in order, then its
/// record to the counters and metrics file. Returns the exit status.
pub(crate) fn emit(ctx: &Ctx, o: Outcome) -> i32 {
    for line in &o.lines {
        let res = match line {
            Line::Say(_) | Line::Print(_) => write_line(&mut std::io::stdout().lock(), line),
            Line::Warning(_) | Line::Error(_) | Line::Info(_) => {
                write_line(&mut std::io::stderr().lock(), line)
            }
        };
        if let Err(e) = res {
            log::debug!("output lost: {e}");
        }
    }
    if let Some(r) = o.record {
        // A hook must end with exit 0 whatever happens while recording.
        let published =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| record::publish(ctx, r)));
        if published.is_err() {
            log::warn!("recording the run's metrics: internal error");
        }
    }
    o.exit
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader went away.
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_closed_stream_is_an_error_not_a_panic() {
        for l in [
            Line::Say("a\nb".into()),
            Line::Print("x".into()),
            Line::Warning("w".into()),
            Line::Error("e".into()),
        ] {
            assert!(write_line(&mut Closed, &l).is_err());
        }
    }

    #[test]
    fn lines_are_prefixed_and_warnings_kept_on_one_line() {
        let mut v = Vec::new();
        write_line(&mut v, &Line::Say("found: x\nnow: y\n".into())).unwrap();
        write_line(&mut v, &Line::Warning("a\nb".into())).unwrap();
        write_line(&mut v, &Line::Error("c".into())).unwrap();
        write_line(&mut v, &Line::Print("raw\n".into())).unwrap();
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "ssh-upgrade-guard: found: x\nssh-upgrade-guard: now: y\n\
             ssh-upgrade-guard: warning: a b\nssh-upgrade-guard: error: c\nraw\n"
        );
    }
}
