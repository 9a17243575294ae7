//! Progress of long operator commands (a rebuild, retention, a backup): a bar on a
//! terminal (done / total, rate, time left, by `indicatif`), and otherwise a line on
//! standard error at most every few seconds and at the end, for logs.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a progress line is written when standard error is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The progress of one piece of work, counted in `unit`.
pub struct Progress {
    label: String,
    unit: &'static str,
    bar: Option<ProgressBar>,
    logged: Mutex<(Instant, Instant)>,
}

impl Progress {
    pub fn new(label: &str, unit: &'static str) -> Arc<Self> {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
                ))
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar
        });
        let now = Instant::now();
        Arc::new(Progress {
            label: label.to_owned(),
            unit,
            bar,
            logged: Mutex::new((now, now)),
        })
    }

    /// `done` of `total` so far.
    pub fn advance(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            return;
        }
        let mut logged = self.logged.lock().expect("never poisoned");
        let (started, last) = *logged;
        if done < total && last.elapsed() < LOG_EVERY {
            return;
        }
        logged.1 = Instant::now();
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / seconds;
        let left = if rate > 0.0 {
            format!("{:.0} s left", total.saturating_sub(done) as f64 / rate)
        } else {
            "time left unknown".to_owned()
        };
        eprintln!(
            "{}: {done}/{total} {} ({:.0}/s, {left})",
            self.label, self.unit, rate
        );
    }

    /// The work ended.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// As the runtime takes progress: a callback of done and total.
    pub fn callback(self: &Arc<Self>) -> ops_core_runtime::projection::Progress {
        let progress = self.clone();
        Arc::new(move |done, total| progress.advance(done, total))
    }
}
