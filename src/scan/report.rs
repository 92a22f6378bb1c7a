//! The scan's one reporter: results to `out` (text or JSON Lines), progress bar, warnings and
//! the summary to `diag`. The engine never prints; it sends events here.

use std::io::{self, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{HostSummary, PortState, ScanEvent, Summary, Target, service_name};

/// Output format of the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `Port N open (service)` lines, a header per host when there are several.
    #[default]
    Text,
    /// One JSON object per host per line.
    Json,
}

/// A host counts as "answering for everything" when at least this share of at least
/// [`MIN_PORTS_FOR_PROXY_WARNING`] ports is open.
const PROXY_SHARE: f64 = 0.9;
/// Below this many ports a mostly-open result is plausible and gets no warning.
const MIN_PORTS_FOR_PROXY_WARNING: u64 = 100;

/// One host's line in `--format json`.
#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    ip: String,
    open: &'a [u16],
    closed: u64,
    filtered: u64,
    elapsed_ms: u128,
}

/// Turns scan events into output. Write errors (a closed pipe) stop the output and are returned
/// by [`Reporter::finish`].
pub struct Reporter<O: Write, D: Write> {
    out: O,
    diag: D,
    format: Format,
    /// Print a header line before each host's ports (when there are several hosts).
    headers: bool,
    bar: Option<ProgressBar>,
    error: Option<io::Error>,
}

impl<O: Write, D: Write> Reporter<O, D> {
    /// A reporter writing results to `out` and diagnostics to `diag`; `progress` shows a bar
    /// on the terminal's stderr (the caller checks that stderr is a terminal).
    pub fn new(out: O, diag: D, format: Format, headers: bool, progress: bool) -> Self {
        let bar = progress.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} ports, {msg}, {eta} left")
                    .expect("valid template"),
            );
            bar
        });
        Reporter {
            out,
            diag,
            format,
            headers,
            bar,
            error: None,
        }
    }

    /// Handles one event of the scan.
    pub fn on_event(&mut self, event: ScanEvent<'_>) {
        match event {
            ScanEvent::HostStart { target } => {
                if self.headers && self.format == Format::Text {
                    self.write_out(format_args!("Host {target}\n"));
                }
            }
            ScanEvent::Port {
                port,
                state: PortState::Open,
                ..
            } => {
                if self.format == Format::Text {
                    match service_name(port) {
                        Some(name) => self.write_out(format_args!("Port {port} open ({name})\n")),
                        None => self.write_out(format_args!("Port {port} open\n")),
                    }
                }
            }
            ScanEvent::Port { .. } => {}
            ScanEvent::HostDone { target, summary } => {
                if self.format == Format::Json {
                    let line = JsonHost {
                        host: &target.name,
                        ip: target.ip.to_string(),
                        open: &summary.open,
                        closed: summary.closed,
                        filtered: summary.filtered,
                        elapsed_ms: summary.elapsed.as_millis(),
                    };
                    let json = serde_json::to_string(&line).expect("plain data serializes");
                    self.write_out(format_args!("{json}\n"));
                }
                if let Some(w) = proxy_warning(target, summary) {
                    self.write_diag(format_args!("{w}\n"));
                }
            }
            ScanEvent::Progress { done, total, open } => {
                if let Some(bar) = &self.bar {
                    let secs = bar.elapsed().as_secs_f64().max(0.001);
                    bar.set_length(total);
                    bar.set_position(done);
                    bar.set_message(format!("{open} open, {:.0} ports/s", done as f64 / secs));
                }
            }
        }
    }

    /// Clears the progress bar and writes the summary to `diag`.
    ///
    /// # Errors
    /// The first error met writing results (for example a closed pipe).
    pub fn finish(mut self, summary: &Summary) -> io::Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let _ = self.out.flush();
        let line = summary_line(summary);
        let _ = writeln!(self.diag, "{line}");
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn write_out(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_some() {
            return;
        }
        let out = &mut self.out;
        let mut write = || out.write_fmt(args).and_then(|()| out.flush());
        let result = match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }

    fn write_diag(&mut self, args: std::fmt::Arguments<'_>) {
        let diag = &mut self.diag;
        let mut write = || diag.write_fmt(args);
        let _ = match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
    }
}

/// The warning for a host where nearly every port answered as open, if it is one.
pub fn proxy_warning(target: &Target, s: &HostSummary) -> Option<String> {
    let total = s.open.len() as u64 + s.closed + s.filtered;
    let open = s.open.len() as u64;
    (total >= MIN_PORTS_FOR_PROXY_WARNING && open as f64 >= total as f64 * PROXY_SHARE).then(|| {
        format!(
            "warning: {open} of {total} ports of {target} answered as open: a SYN proxy or \
             firewall is probably answering for the host, so these ports are not proof of services"
        )
    })
}

/// The one-line summary printed on stderr after a scan.
///
/// ```
/// use tcpkit::scan::{Summary, report::summary_line};
/// let s = Summary { hosts: 1, ports: 3, open: 1, closed: 1, filtered: 1, ..Default::default() };
/// assert_eq!(summary_line(&s), "scanned 3 ports on 1 host in 0.00 s: 1 open, 1 closed, 1 filtered");
/// ```
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "scanned {} ports on {} host{} in {:.2} s: {} open, {} closed, {} filtered",
        s.ports,
        s.hosts,
        if s.hosts == 1 { "" } else { "s" },
        s.elapsed.as_secs_f64(),
        s.open,
        s.closed,
        s.filtered
    );
    if s.self_connects > 0 {
        line.push_str(&format!(
            " ({} TCP self-connects retried, not reported as open)",
            s.self_connects
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            name: "h".into(),
            ip: "192.0.2.1".parse().unwrap(),
        }
    }

    #[test]
    fn warns_when_nearly_every_port_is_open() {
        let all_open = HostSummary {
            open: (1..=1000).collect(),
            closed: 5,
            ..Default::default()
        };
        assert!(
            proxy_warning(&target(), &all_open)
                .unwrap()
                .contains("SYN proxy")
        );
        let few = HostSummary {
            open: vec![22, 80],
            closed: 998,
            ..Default::default()
        };
        assert!(proxy_warning(&target(), &few).is_none());
        let small_scan = HostSummary {
            open: vec![22, 80],
            ..Default::default()
        };
        assert!(proxy_warning(&target(), &small_scan).is_none());
    }

    #[test]
    fn text_output_streams_open_ports_and_json_one_line_per_host() {
        let t = target();
        let summary = HostSummary {
            open: vec![22],
            closed: 1,
            filtered: 1,
            elapsed: std::time::Duration::from_millis(7),
        };
        let mut out = Vec::new();
        let mut r = Reporter::new(&mut out, io::sink(), Format::Text, true, false);
        r.on_event(ScanEvent::HostStart { target: &t });
        for (port, state) in [
            (21, PortState::Closed),
            (22, PortState::Open),
            (23, PortState::Filtered),
        ] {
            r.on_event(ScanEvent::Port {
                target: &t,
                port,
                state,
            });
        }
        r.on_event(ScanEvent::HostDone {
            target: &t,
            summary: &summary,
        });
        r.finish(&Summary::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Host h (192.0.2.1)\nPort 22 open (ssh)\n"
        );

        let mut out = Vec::new();
        let mut r = Reporter::new(&mut out, io::sink(), Format::Json, true, false);
        r.on_event(ScanEvent::HostDone {
            target: &t,
            summary: &summary,
        });
        r.finish(&Summary::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"host\":\"h\",\"ip\":\"192.0.2.1\",\"open\":[22],\"closed\":1,\"filtered\":1,\"elapsed_ms\":7}\n"
        );
    }
}
