//! The `tcpkit` command line: parses arguments, turns them into library configs, runs, and
//! maps errors to exit codes (2 usage, 1 runtime failure, 0 success or a closed pipe).

use std::io::{self, IsTerminal};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tcpkit::logging::{self, LogTarget};
use tcpkit::scan::{self, PortList, ScanConfig, TargetList, TargetSpec, Timeout, report};
use tcpkit::server::{self, ServerConfig, Service};

#[derive(Parser)]
#[command(
    name = "tcpkit",
    version,
    about = "A TCP toolkit: a fast, accurate port scanner, a multithreaded echo server and \
             client with an admin console, and a chat server with accounts and its client",
    after_help = "Examples:\n  tcpkit scan 127.0.0.1                 every port of this machine\n  \
                  tcpkit scan -p 22,80,443 example.org  three ports of a named host\n  \
                  tcpkit echo-server                    echo on 127.0.0.1:9090, console on stdin\n  \
                  tcpkit echo                           talk to it (asks host and port)\n  \
                  tcpkit chat-server                    chat on 127.0.0.1:9090 (nc works as a client)\n  \
                  tcpkit chat --user alice              log in and chat\n\n\
                  Run `tcpkit help COMMAND` for a command's options."
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
    /// Run the echo server: every client gets its own thread and its bytes back.
    #[command(after_help = ECHO_SERVER_HELP)]
    EchoServer(ServerArgs),
    /// Echo client: send each line typed (or piped), print what comes back; `exit` ends.
    #[command(after_help = ECHO_HELP)]
    Echo(ClientArgs),
    /// Run the chat server: accounts, sessions, history, every line to everyone else.
    #[command(after_help = CHAT_SERVER_HELP)]
    ChatServer(ChatServerArgs),
    /// Chat client: logs in (saved token, or name and password), then chat; `exit` ends.
    #[command(after_help = CHAT_HELP)]
    Chat(ChatArgs),
}

const CHAT_HELP: &str = "\
Logs in with the session token saved for this server ($XDG_STATE_HOME/tcpkit/tokens, else
~/.local/state/tcpkit/tokens), else answers the server's prompts: the name (--user, or asked)
and the password, read without echo. Incoming lines show above the line being typed.
Type a line to say it to everyone; /msg NAME TEXT, /who, /history, /help; `exit` or /quit ends.
Piped stdin works too: prompts take the next input lines.

Examples:
  tcpkit chat                        asks `Host [127.0.0.1]:` and `Port [9090]:`
  tcpkit chat 127.0.0.1 9090 --user alice";

#[derive(clap::Args)]
struct ChatArgs {
    #[command(flatten)]
    to: ClientArgs,
    /// The name to log in or register with (else asked).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
}

const CHAT_SERVER_HELP: &str = "\
Clients: `nc HOST PORT`, `telnet HOST PORT`, or `tcpkit chat`. The protocol is plain text
lines; see docs/protocol.md. Passwords are stored only as argon2id hashes.

Console commands (stdin): help, status, who, kick NAME, pause, resume, logs [N], clear-logs,
clear-users (accounts, identifications and tokens; the history stays), shutdown (or quit).

Examples:
  tcpkit chat-server                           127.0.0.1:9090, tcpkit-chat.db here
  tcpkit chat-server --host 0.0.0.0 --db /var/lib/tcpkit/chat.db --history 100";

#[derive(clap::Args)]
struct ChatServerArgs {
    #[command(flatten)]
    server: ServerArgs,

    /// SQLite database: accounts, identifications, tokens, history.
    #[arg(long, value_name = "FILE", default_value = "tcpkit-chat.db")]
    db: std::path::PathBuf,

    /// Messages replayed at login (0: none).
    #[arg(long, value_name = "N", default_value_t = tcpkit::chat::protocol::DEFAULT_HISTORY,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1000))]
    history: usize,

    /// The longest line a client may send, in bytes; longer lines are refused.
    #[arg(long, value_name = "BYTES", default_value_t = tcpkit::chat::protocol::DEFAULT_MAX_LINE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(16..=1_048_576))]
    max_line: usize,

    /// Bytes a client may fall behind before it is disconnected (send queue exceeded).
    #[arg(long, value_name = "BYTES", default_value_t = tcpkit::chat::DEFAULT_MAX_SENDQ,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1_073_741_824))]
    max_sendq: usize,
}

const ECHO_SERVER_HELP: &str = "\
Console commands (typed on stdin while the server runs; replies on stdout):
  help, status, pause, resume, logs [N], clear-logs, clear-users, shutdown (or quit)
End of stdin ends the console, not the server; Ctrl-C or SIGTERM shut down gracefully.

Examples:
  tcpkit echo-server                         127.0.0.1:9090 (or the next free port)
  tcpkit echo-server --port 0 --no-console   a system-chosen port, no console
  tcpkit echo-server --host :: -v --log -    all interfaces, debug events on stderr

The first stdout line is always `listening on ADDR:PORT`.";

const ECHO_HELP: &str = "\
Examples:
  tcpkit echo                       asks `Host [127.0.0.1]:` and `Port [9090]:` on a terminal
  tcpkit echo 127.0.0.1 9090
  printf 'hello\\n' | tcpkit echo -q 127.0.0.1 9090    scripted: prints `hello`";

/// Options every server shares.
#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on (all interfaces only when asked: 0.0.0.0 or ::).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port to listen on; when busy, the next free one of the following 20 is taken.
    /// 0 lets the system choose.
    #[arg(short, long, default_value_t = server::DEFAULT_PORT)]
    port: u16,

    /// Ask for the port on the terminal (`Port [9090]: `) instead.
    #[arg(long)]
    ask: bool,

    /// Log file; `-` logs to stderr [default: tcpkit-echo.log or tcpkit-chat.log here].
    #[arg(long, value_name = "FILE")]
    log: Option<String>,

    /// Clients served at once; one more gets `! server full, try again later`.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_MAX_CLIENTS,
          value_parser = parse_max_clients)]
    max_clients: usize,

    /// Disconnect a client silent for this many seconds [default: never].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: Option<u64>,

    /// No admin console on stdin (stop with Ctrl-C or SIGTERM).
    #[arg(long)]
    no_console: bool,

    /// Log every read and write too (DEBUG).
    #[arg(short, long)]
    verbose: bool,
}

/// Where a client connects.
#[derive(clap::Args)]
struct ClientArgs {
    /// Server host [default: asked on a terminal, else 127.0.0.1].
    host: Option<String>,
    /// Server port [default: asked on a terminal, else 9090].
    port: Option<u16>,
    /// No connect/send/receive notices on stderr.
    #[arg(short, long)]
    quiet: bool,
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

fn parse_max_clients(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid client limit '{s}': give a number from 1 to 1000000"
        )),
    }
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
        Command::EchoServer(args) => {
            run_server(args, "tcpkit-echo.log", Arc::new(tcpkit::echo::Echo))
        }
        Command::Echo(args) => run_echo(args),
        Command::ChatServer(args) => run_chat_server(args),
        Command::Chat(args) => run_chat(args),
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

fn run_chat_server(args: ChatServerArgs) -> Result<()> {
    let store = tcpkit::store::SqliteStore::open(&args.db)
        .with_context(|| format!("cannot open the database '{}'", args.db.display()))?;
    let config = tcpkit::chat::ChatConfig {
        history: args.history,
        max_line: args.max_line,
        max_sendq: args.max_sendq,
        ..Default::default()
    };
    let hub = Arc::new(tcpkit::chat::hub::LocalHub::default());
    let chat = tcpkit::chat::Chat::new(config, Arc::new(store), hub)
        .context("cannot start the chat service")?;
    run_server(args.server, "tcpkit-chat.log", Arc::new(chat))
}

fn run_server(args: ServerArgs, default_log: &str, service: Arc<dyn Service>) -> Result<()> {
    let mut port = args.port;
    if args.ask {
        if !io::stdin().is_terminal() {
            bail!("--ask needs a terminal on stdin");
        }
        port = tcpkit::prompt::ask_port(io::stdin().lock(), io::stderr(), port)?
            .context("no port given (end of input at the prompt)")?;
    }
    let target = LogTarget::from_arg(args.log.as_deref().unwrap_or(default_log));
    let logging = logging::init(&target, args.verbose)?;
    let fd_limit = tcpkit::fdlimit::raise();
    let (ceiling, bound_by) = server::client_ceiling(fd_limit, service.threads_per_client());
    let max_clients = args.max_clients.min(ceiling);
    if max_clients < args.max_clients {
        eprintln!(
            "note: {bound_by} caps clients at {max_clients} (asked {})",
            args.max_clients
        );
    }
    let config = ServerConfig {
        host: args.host,
        port,
        max_clients,
        idle_timeout: args.idle_timeout.map(Duration::from_secs),
        ..ServerConfig::default()
    };
    tracing::info!(max_clients, "server starting");
    server::run(
        config,
        service,
        &logging,
        !args.no_console,
        &mut io::stdout(),
        &mut io::stderr(),
    )?;
    Ok(())
}

/// Finds the server (asking on a terminal) and connects.
fn connect_client(args: &ClientArgs) -> Result<(String, u16, std::net::TcpStream)> {
    let interactive = io::stdin().is_terminal();
    let (mut input, mut prompt_out) = (io::stdin().lock(), io::stderr());
    let terminal: Option<(&mut dyn io::BufRead, &mut dyn io::Write)> =
        interactive.then_some((&mut input, &mut prompt_out));
    let (host, port) =
        tcpkit::client::endpoint(args.host.clone(), args.port, server::DEFAULT_PORT, terminal)?;
    let stream = tcpkit::client::connect(&host, port)?;
    Ok((host, port, stream))
}

fn run_chat(args: ChatArgs) -> Result<()> {
    use tcpkit::chat::client;
    let (host, port, stream) = connect_client(&args.to)?;
    if !args.to.quiet {
        eprintln!("connected to {host}:{port}");
    }
    let session = client::Session::new(
        stream,
        format!("{host}:{port}"),
        client::TokenStore::from_env(),
    )?;
    if io::stdin().is_terminal() {
        client::run_terminal(session, args.user)?;
    } else {
        client::run_piped(session, args.user, io::stdin().lock(), io::stdout())?;
    }
    Ok(())
}

fn run_echo(args: ClientArgs) -> Result<()> {
    let (host, port, stream) = connect_client(&args)?;
    let input = io::stdin().lock();
    let mut notices = io::stderr();
    if !args.quiet {
        eprintln!("connected to {host}:{port} (type lines to send, `exit` to quit)");
    }
    let result = tcpkit::echo::run_client(
        &stream,
        input,
        io::stdout().lock(),
        (!args.quiet).then_some(&mut notices as &mut dyn io::Write),
    );
    if !args.quiet {
        eprintln!("disconnected from {host}:{port}");
    }
    result.context("echo failed")
}
