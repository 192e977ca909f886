//! The weight upload's progress line on stderr: drawn only when stderr is a terminal
//! and the upload lasts longer than a glance, redrawn at most ten times a second, and
//! erased when the upload ends (or fails), so that it never mixes with real output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const FIRST_DRAW: Duration = Duration::from_millis(300);
const REDRAW: Duration = Duration::from_millis(100);
const BAR: usize = 30;

pub(super) struct UploadProgress {
    total: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    terminal: bool,
}

impl UploadProgress {
    pub fn new(total: u64) -> UploadProgress {
        UploadProgress {
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done = (self.done + bytes).min(self.total);
        let now = Instant::now();
        let due = match self.drawn {
            None => now - self.started >= FIRST_DRAW,
            Some(last) => now - last >= REDRAW,
        };
        if self.terminal && due {
            let filled = (BAR as u64 * self.done / self.total.max(1)) as usize;
            let gb = |b: u64| b as f64 / 1e9;
            eprint!(
                "\ruploading weights [{}{}] {:.2} / {:.2} GB",
                "#".repeat(filled),
                " ".repeat(BAR - filled),
                gb(self.done),
                gb(self.total)
            );
            let _ = std::io::stderr().flush();
            self.drawn = Some(now);
        }
    }
}

impl Drop for UploadProgress {
    fn drop(&mut self) {
        if self.drawn.is_some() {
            eprint!("\r{}\r", " ".repeat(BAR + 48));
            let _ = std::io::stderr().flush();
        }
    }
}
