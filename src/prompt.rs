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
