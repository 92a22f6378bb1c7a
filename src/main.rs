//! The `tcpkit` command line: parses arguments, turns them into library configs, runs, and
//! maps errors to exit codes (2 usage, 1 runtime failure, 0 success or a closed pipe).

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tcpkit::scan::{self, PortList, ScanConfig, TargetList, TargetSpec, Timeout, report};

#[derive(Parser)]
#[command(
    name = "tcpkit",
    version,
    about = "A TCP toolkit: a fast, accurate port scanner (more tools to come)",
    after_help = "Examples:\n  tcpkit scan 127.0.0.1                 every port of this machine\n  \
                  tcpkit scan -p 22,80,443 example.org  three ports of a named host\n  \
                  tcpkit scan --format json ::1         JSON Lines, one object per host\n\n\
                  Run `tcpkit help scan` for the scanner's options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan TCP ports: print `Port N open` for each port that accepts a connection.
    #[command(after_help = SCAN_EXAMPLES)]
    Scan(ScanArgs),
}

const SCAN_EXAMPLES: &str = "\
Port states:
  open      the connect succeeded (TCP self-connects on loopback are retried, never reported)
  closed    the host refused the connect (RST)
  filtered  no answer after every try, or the host is unreachable; never reported as closed

Examples:
  tcpkit scan                               ask for the host, scan all ports
  tcpkit scan 127.0.0.1                     all ports 1-65535 of this machine
  tcpkit scan -p 1-1024,8080 localhost ::1  two hosts, some ports, a header per host
  tcpkit scan -p 22 198.18.0.0/30           a CIDR block, network and broadcast included
  tcpkit scan --format json -p 80 host      {\"host\":...,\"open\":[80],\"closed\":0,...}
  tcpkit scan --timeout 500 --retries 0 h   a fixed 500 ms wait, one try per port

Exit status: 0 when the scan ran (whatever it found), 1 on runtime failure (a host that does
not resolve), 2 on bad usage.";

#[derive(clap::Args)]
struct ScanArgs {
    /// Hosts to scan: names, IPv4 or IPv6 addresses, CIDR blocks (198.18.0.0/30).
    /// Asked on the terminal when none is given.
    #[arg(value_name = "TARGET", value_parser = TargetSpec::parse)]
    targets: Vec<TargetSpec>,

    /// Ports: 22 | 22,80,443 | 1-1024 | -1024 | 60000- | mixes of these | all (or -).
    #[arg(short, long, default_value = "all", value_parser = PortList::parse)]
    ports: PortList,

    /// Wait per try in milliseconds, or `auto`: adapt to each host's measured round-trip
    /// time (as nmap does) between 100 and 1000 ms, doubling for each retry.
    #[arg(long, value_name = "MS|auto", default_value = "auto", value_parser = parse_timeout)]
    timeout: Timeout,

    /// Extra tries for a port that did not answer before it is called filtered.
    #[arg(long, value_name = "N", default_value_t = scan::DEFAULT_RETRIES,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    retries: u32,

    /// Connects in flight over all threads [default: 16384, capped by the open-files limit,
    /// which is raised to its hard limit at start].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    concurrency: Option<u32>,

    /// Worker threads, each with many connects in flight [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: Option<u32>,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,

    /// Never draw the progress bar (it is drawn only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// `Port N open` lines in port order.
    Text,
    /// One JSON object per host per line.
    Json,
}

fn parse_timeout(s: &str) -> Result<Timeout, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Timeout::default());
    }
    match s.parse::<u64>() {
        Ok(ms) if (1..=600_000).contains(&ms) => Ok(Timeout::Fixed(Duration::from_millis(ms))),
        _ => Err(format!(
            "invalid timeout '{s}': give milliseconds (1-600000) or 'auto'"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => run_scan(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcpkit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run_scan(args: ScanArgs) -> Result<()> {
    let limit = tcpkit::fdlimit::raise();
    let usable = tcpkit::fdlimit::usable(limit);
    let wanted = args
        .concurrency
        .map_or(scan::DEFAULT_CONCURRENCY, |c| c as usize);
    let concurrency = wanted.min(usable);
    if concurrency < wanted {
        eprintln!(
            "note: the open-files limit ({limit}) caps connects in flight at {concurrency} \
             (asked {wanted}); raise it with `ulimit -n` for more"
        );
    }
    let mut config = ScanConfig {
        concurrency,
        timeout: args.timeout,
        retries: args.retries,
        ..ScanConfig::default()
    };
    if let Some(t) = args.threads {
        config.threads = t as usize;
    }

    let targets = if args.targets.is_empty() {
        ask_target()?
    } else {
        TargetList::resolve(&args.targets, scan::system_resolve)?
    };

    let format = match args.format {
        OutputFormat::Text => report::Format::Text,
        OutputFormat::Json => report::Format::Json,
    };
    let progress = !args.no_progress && io::stderr().is_terminal();
    let mut reporter = report::Reporter::new(
        io::stdout().lock(),
        io::stderr(),
        format,
        targets.len() > 1,
        progress,
    );
    let summary = scan::scan(&targets, &args.ports, &config, |ev| reporter.on_event(ev))
        .context("scan failed")?;
    reporter.finish(&summary).context("cannot write results")?;
    Ok(())
}

/// With no target on the command line: ask on the terminal, or fail as a usage error.
fn ask_target() -> Result<TargetList> {
    let mut scan_cmd = Cli::command()
        .find_subcommand("scan")
        .expect("scan is a subcommand")
        .clone()
        .bin_name("tcpkit scan");
    if !io::stdin().is_terminal() {
        scan_cmd
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "no TARGET given and stdin is not a terminal to ask on; \
                 name a host, e.g. `tcpkit scan 127.0.0.1`",
            )
            .exit();
    }
    let answer = tcpkit::prompt::ask(io::stdin().lock(), io::stderr(), "Host to scan: ", |s| {
        if s.is_empty() {
            return Err("please type a host name or an IP address (Ctrl-D to give up)".into());
        }
        let spec = TargetSpec::parse(s).map_err(|e| e.to_string())?;
        TargetList::resolve(&[spec], scan::system_resolve).map_err(|e| e.to_string())
    })?;
    match answer {
        Some(list) => Ok(list),
        None => scan_cmd
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "no TARGET given (end of input at the prompt)",
            )
            .exit(),
    }
}
