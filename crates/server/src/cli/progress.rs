//! Progress bars for long commands (`rules import`), drawn with `indicatif` (a well-kept
//! library: terminal width, redraw rate and clearing are its job, not ours) on standard error,
//! and only when standard error is a terminal and `--json` was not given: a script or a pipe
//! gets no progress, only the answer.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where a command's progress goes: bars on a terminal, nothing otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    shown: bool,
}

impl Progress {
    /// Progress shown when standard error is a terminal, unless `quiet` (`--json`).
    pub fn new(quiet: bool) -> Progress {
        Progress {
            shown: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A bar of `total` steps (`bytes`: counted in bytes), with `message` before it.
    pub fn bar(&self, message: &str, total: u64, bytes: bool) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.target());
        let template = if bytes {
            "{msg:>9} [{bar:32}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
        } else {
            "{msg:>9} [{bar:32}] {human_pos}/{human_len}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        bar
    }

    /// A spinner saying `message`, ticking on its own until finished.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let spinner = ProgressBar::with_draw_target(None, self.target());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            spinner.set_style(style);
        }
        spinner.set_message(message.to_owned());
        if self.shown {
            spinner.enable_steady_tick(Duration::from_millis(120));
        }
        spinner
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}
