//! Safe terminal input: ask a question, explain a bad answer and ask again.

use std::io::{self, BufRead, Write};

/// Asks `question` on `output` until `check` accepts a line of `input`; an empty line is
/// passed to `check` as `""` (so it can supply a default). Returns `None` at end of input.
///
/// # Errors
/// I/O errors of the terminal.
///
/// ```
/// let mut out = Vec::new();
/// let answer = tcpkit::prompt::ask(&b"x\n7\n"[..], &mut out, "n: ", |s| {
///     s.parse::<u8>().map_err(|_| format!("'{s}' is not a number"))
/// }).unwrap();
/// assert_eq!(answer, Some(7));
/// assert_eq!(String::from_utf8(out).unwrap(), "n: 'x' is not a number\nn: ");
/// ```
pub fn ask<T>(
    mut input: impl BufRead,
    mut output: impl Write,
    question: &str,
    mut check: impl FnMut(&str) -> Result<T, String>,
) -> io::Result<Option<T>> {
    loop {
        write!(output, "{question}")?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        match check(line.trim()) {
            Ok(v) => return Ok(Some(v)),
            Err(why) => writeln!(output, "{why}")?,
        }
    }
}

/// Asks for a port with a default (`Port [9090]: `); Enter takes the default.
///
/// # Errors
/// I/O errors of the terminal.
pub fn ask_port(input: impl BufRead, output: impl Write, default: u16) -> io::Result<Option<u16>> {
    ask(input, output, &format!("Port [{default}]: "), |s| {
        if s.is_empty() {
            return Ok(default);
        }
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!(
                "invalid port '{s}': enter a number from 1 to 65535"
            )),
        }
    })
}

/// Asks for a host with a default (`Host [127.0.0.1]: `); Enter takes the default. The answer
/// must be an IP address or a valid host name.
///
/// # Errors
/// I/O errors of the terminal.
pub fn ask_host(
    input: impl BufRead,
    output: impl Write,
    default: &str,
) -> io::Result<Option<String>> {
    ask(input, output, &format!("Host [{default}]: "), |s| {
        if s.is_empty() {
            return Ok(default.to_string());
        }
        match crate::scan::TargetSpec::parse(s) {
            Ok(crate::scan::TargetSpec::Net(..)) | Err(_) => Err(format!(
                "invalid host '{s}': enter a host name or an IP address"
            )),
            Ok(_) => Ok(s.to_string()),
        }
    })
}
