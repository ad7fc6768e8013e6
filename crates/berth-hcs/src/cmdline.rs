//! Windows command lines: joining arguments so that `CommandLineToArgvW` (and the
//! Microsoft C runtime) splits them back into the same arguments, and a splitter
//! with `CommandLineToArgvW`'s rules.
//!
//! The program name (the first argument) is parsed by its own rule: it runs to the
//! next quote if it starts with one, else to the first space or tab, and
//! backslashes are literal in it. Every other argument follows the backslash and
//! quote rules: `2n` backslashes before a quote become `n` and the quote toggles
//! quoting, `2n+1` become `n` and a literal quote, other backslashes are literal.

/// Why arguments cannot be joined into a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// There is no program to run.
    #[error("the command has no arguments")]
    Empty,
    /// A NUL cannot appear in a Windows command line.
    #[error("argument {index} contains a NUL character")]
    Nul {
        /// Which argument.
        index: usize,
    },
    /// The program name's own rule cannot carry a quote.
    #[error("the program name contains a double quote")]
    QuoteInProgram,
}

fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Join `args` into one command line that splits back into exactly `args`.
pub fn join<S: AsRef<str>>(args: &[S]) -> Result<String, JoinError> {
    let (program, rest) = args.split_first().ok_or(JoinError::Empty)?;
    if let Some(index) = args.iter().position(|a| a.as_ref().contains('\0')) {
        return Err(JoinError::Nul { index });
    }
    let program = program.as_ref();
    if program.contains('"') {
        return Err(JoinError::QuoteInProgram);
    }
    let mut line = String::with_capacity(args.iter().map(|a| a.as_ref().len() + 3).sum());
    if program.is_empty() || program.contains(is_separator) {
        line.push('"');
        line.push_str(program);
        line.push('"');
    } else {
        line.push_str(program);
    }
    for arg in rest {
        line.push(' ');
        push_quoted(&mut line, arg.as_ref());
    }
    Ok(line)
}

/// Append one non-program argument, quoted only when it must be.
fn push_quoted(line: &mut String, arg: &str) {
    let needs_quotes = arg.is_empty()
        || arg.contains(|c: char| is_separator(c) || c == '"' || c == '\n' || c == '\x0b');
    if !needs_quotes {
        line.push_str(arg);
        return;
    }
    line.push('"');
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                // Double the run before a quote, then escape the quote itself.
                line.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                line.push('"');
                backslashes = 0;
            }
            _ => {
                line.extend(std::iter::repeat_n('\\', backslashes));
                line.push(c);
                backslashes = 0;
            }
        }
    }
    // The closing quote follows: double the trailing run so it stays literal.
    line.extend(std::iter::repeat_n('\\', backslashes * 2));
    line.push('"');
}

/// Split a command line the way `CommandLineToArgvW` does (for a non-empty line).
pub fn split(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;

    // The program name.
    let mut program = String::new();
    if chars.first() == Some(&'"') {
        i = 1;
        while i < chars.len() && chars[i] != '"' {
            program.push(chars[i]);
            i += 1;
        }
        i += 1; // the closing quote, if any
    } else {
        while i < chars.len() && !is_separator(chars[i]) {
            program.push(chars[i]);
            i += 1;
        }
    }
    args.push(program);

    loop {
        while i < chars.len() && is_separator(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut arg = String::new();
        let mut in_quotes = false;
        while i < chars.len() {
            let c = chars[i];
            if is_separator(c) && !in_quotes {
                break;
            }
            match c {
                '\\' => {
                    let start = i;
                    while i < chars.len() && chars[i] == '\\' {
                        i += 1;
                    }
                    let n = i - start;
                    if i < chars.len() && chars[i] == '"' {
                        arg.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            arg.push('"');
                            i += 1;
                        }
                        // An even run leaves the quote to toggle quoting below.
                    } else {
                        arg.extend(std::iter::repeat_n('\\', n));
                    }
                    continue;
                }
                '"' => {
                    if in_quotes && chars.get(i + 1) == Some(&'"') {
                        // `""` inside quotes: a literal quote, and quoting ends.
                        arg.push('"');
                        i += 2;
                        in_quotes = false;
                        continue;
                    }
                    in_quotes = !in_quotes;
                }
                _ => arg.push(c),
            }
            i += 1;
        }
        args.push(arg);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_arguments_are_not_quoted() {
        assert_eq!(
            join(&["cmd", "/c", "echo", "hi"]).unwrap(),
            "cmd /c echo hi"
        );
    }

    #[test]
    fn spaces_quotes_and_backslashes_are_escaped() {
        let args = [
            "C:\\Program Files\\app.exe",
            "a b",
            "say \"hi\"",
            "C:\\dir\\",
            "",
            "x\\\\\"y",
        ];
        let line = join(&args).unwrap();
        assert_eq!(
            line,
            r#""C:\Program Files\app.exe" "a b" "say \"hi\"" C:\dir\ "" "x\\\\\"y""#
        );
        assert_eq!(split(&line), args);
    }

    #[test]
    fn trailing_backslashes_are_doubled_before_the_closing_quote() {
        let line = join(&["p", "dir with space\\"]).unwrap();
        assert_eq!(line, r#"p "dir with space\\""#);
        assert_eq!(split(&line), ["p", "dir with space\\"]);
    }

    #[test]
    fn split_matches_documented_examples() {
        // The examples of Microsoft's "Parsing C command-line arguments".
        assert_eq!(split(r#"p "a b c" d e"#), ["p", "a b c", "d", "e"]);
        assert_eq!(split(r#"p "ab\"c" "\\" d"#), ["p", "ab\"c", "\\", "d"]);
        assert_eq!(
            split(r#"p a\\\b d"e f"g h"#),
            ["p", "a\\\\\\b", "de fg", "h"]
        );
        assert_eq!(split(r#"p a\\\"b c d"#), ["p", "a\\\"b", "c", "d"]);
        assert_eq!(split(r#"p a\\\\"b c" d e"#), ["p", "a\\\\b c", "d", "e"]);
        assert_eq!(split(r#""C:\a b\p.exe" x"#), ["C:\\a b\\p.exe", "x"]);
    }

    #[test]
    fn join_rejects_what_windows_cannot_carry() {
        assert_eq!(join::<&str>(&[]), Err(JoinError::Empty));
        assert_eq!(join(&["p", "a\0b"]), Err(JoinError::Nul { index: 1 }));
        assert_eq!(join(&["p\"q"]), Err(JoinError::QuoteInProgram));
    }

    fn arg_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            // Dense in the characters that matter.
            "[ab \t\\\\\"\n]{0,12}",
            // Anything else a string can hold.
            any::<String>().prop_map(|s| s.replace('\0', "")),
        ]
    }

    fn program_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 :.\\\\\t]{0,16}",
            any::<String>().prop_map(|s| s.replace(['\0', '"'], "")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn round_trip(program in program_strategy(), rest in prop::collection::vec(arg_strategy(), 0..6)) {
            let mut args = vec![program];
            args.extend(rest);
            let line = join(&args).unwrap();
            prop_assert_eq!(split(&line), args);
        }
    }
}
