//! Parsers for the values `berth run` and `berth update` take, with Docker's
//! grammar and Docker's edge cases.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The CPU period `--cpus` is expressed against, in microseconds (Docker's).
pub const CPU_PERIOD: u64 = 100_000;

/// The smallest CPU quota the kernel accepts, in microseconds (1 ms).
const MIN_CPU_QUOTA: i64 = 1_000;

/// A value given on the command line that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A size such as `--memory` is not a non-negative number with an optional
    /// b, k, m, g, t or p suffix.
    #[error(
        "invalid size {0:?}: expected a number with an optional b, k, m or g suffix, such as 64m"
    )]
    Size(String),
    /// `--cpus` is not a positive decimal number.
    #[error("invalid number of CPUs {0:?}: expected a positive decimal number of at least 0.01, such as 0.5")]
    Cpus(String),
    /// `-v` does not have the form `SRC:DST[:ro|rw]`.
    #[error("invalid volume {spec:?}: {reason}")]
    Volume {
        /// The volume as given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source of a `-v` bind does not exist on the host.
    #[error("volume source {0} does not exist")]
    VolumeSourceMissing(PathBuf),
    /// The source of a `-v` bind exists but cannot be inspected.
    #[error("volume source {path}: {source}")]
    VolumeSource {
        /// The source path.
        path: PathBuf,
        /// Why it cannot be inspected.
        source: io::Error,
    },
    /// `--tmpfs` does not have the form `DST[:OPTIONS]` with an absolute DST.
    #[error("invalid tmpfs {0:?}: expected an absolute path, optionally followed by :OPTIONS")]
    Tmpfs(String),
    /// `-e` has no variable name.
    #[error("invalid environment variable {0:?}: the name is empty")]
    Env(String),
    /// An `--env-file` cannot be read.
    #[error("env file {path}: {source}")]
    EnvFileRead {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: io::Error,
    },
    /// A line of an `--env-file` is not a valid variable.
    #[error("env file {path} line {line}: {reason}")]
    EnvFileLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A signal is neither a known name nor a number from 1 to 64.
    #[error("invalid signal {0:?}")]
    Signal(String),
}

/// A bind mount asked for with `-v SRC:DST[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Absolute path on the host.
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: PathBuf,
    /// Mounted read-only (`:ro`).
    pub readonly: bool,
}

/// A tmpfs asked for with `--tmpfs DST[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    /// Absolute path in the container.
    pub destination: PathBuf,
    /// Mount options given after the colon (`size=64m,mode=755`), if any;
    /// Docker's defaults are added by the spec builder.
    pub options: Vec<String>,
}

/// Parses a size the way Docker's `RAMInBytes` does: a decimal number, an
/// optional space, and an optional case-insensitive unit `b`, `k`, `m`, `g`,
/// `t` or `p` (binary multiples), optionally followed by `i` and/or `b`
/// (`64m`, `64MB`, `1.5GiB`, `512`). Negative, empty and overflowing values
/// are refused.
pub fn parse_bytes(s: &str) -> Result<i64, ParseError> {
    let err = || ParseError::Size(s.to_owned());
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    if num.is_empty() || !num.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(err());
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let mut chars = rest.chars().peekable();
    let multiplier: u64 = match chars.peek() {
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some('p') => 1 << 50,
        _ => 1,
    };
    if multiplier != 1 {
        chars.next();
        if chars.peek() == Some(&'i') {
            chars.next();
        }
    }
    if chars.peek() == Some(&'b') {
        chars.next();
    }
    if chars.next().is_some() {
        return Err(err());
    }

    // Integers are computed exactly; a fraction (1.5g) goes through f64 and is
    // truncated, as Docker does.
    let bytes = if num.contains('.') {
        let value: f64 = num.parse().map_err(|_| err())?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes >= i64::MAX as f64 {
            return Err(err());
        }
        bytes as i64
    } else {
        let value: u64 = num.parse().map_err(|_| err())?;
        let bytes = value.checked_mul(multiplier).ok_or_else(err)?;
        i64::try_from(bytes).map_err(|_| err())?
    };
    Ok(bytes)
}

/// Parses `--memory-swap`: a size as [`parse_bytes`], or `-1` for unlimited swap.
pub fn parse_memory_swap(s: &str) -> Result<i64, ParseError> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_bytes(s)
}

/// Parses `--cpus` (a decimal number of CPUs) into a CFS quota and period in
/// microseconds: `0.5` gives `(50000, 100000)`. At least 0.01 CPUs (the
/// kernel's 1 ms minimum quota).
pub fn parse_cpus(s: &str) -> Result<(i64, u64), ParseError> {
    let err = || ParseError::Cpus(s.to_owned());
    if !s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        // Refuses what f64 would accept: signs, exponents, inf and NaN.
        return Err(err());
    }
    let cpus: f64 = s.parse().map_err(|_| err())?;
    let quota = (cpus * CPU_PERIOD as f64).round();
    if !(MIN_CPU_QUOTA as f64..=i64::MAX as f64 / 2.0).contains(&quota) {
        return Err(err());
    }
    Ok((quota as i64, CPU_PERIOD))
}

/// Parses `-v SRC:DST[:ro|rw]`. Both paths must be absolute (berth has no
/// named volumes), DST must not be `/`, and SRC must exist on the host:
/// a missing source is [`ParseError::VolumeSourceMissing`], since Docker's
/// habit of creating it silently hides typos.
pub fn parse_volume(spec: &str) -> Result<Volume, ParseError> {
    let invalid = |reason| ParseError::Volume {
        spec: spec.to_owned(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, readonly) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        [_, _, _] => return Err(invalid("the mode must be ro or rw")),
        [_] => return Err(invalid("expected SRC:DST[:ro|rw]")),
        _ => return Err(invalid("too many colons; expected SRC:DST[:ro|rw]")),
    };
    let source = Path::new(source);
    let destination = Path::new(destination);
    if !source.is_absolute() {
        return Err(invalid(
            "the source must be an absolute path (named volumes are not supported)",
        ));
    }
    if !destination.is_absolute() {
        return Err(invalid("the destination must be an absolute path"));
    }
    if destination.parent().is_none() {
        return Err(invalid("the destination cannot be /"));
    }
    match fs::metadata(source) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ParseError::VolumeSourceMissing(source.to_owned()))
        }
        Err(e) => {
            return Err(ParseError::VolumeSource {
                path: source.to_owned(),
                source: e,
            })
        }
    }
    Ok(Volume {
        source: source.to_owned(),
        destination: destination.to_owned(),
        readonly,
    })
}

/// Parses `--tmpfs DST[:OPTIONS]` (`/run:size=64m,mode=755`).
pub fn parse_tmpfs(spec: &str) -> Result<Tmpfs, ParseError> {
    let (dst, options) = match spec.split_once(':') {
        Some((dst, opts)) => (dst, opts),
        None => (spec, ""),
    };
    let destination = Path::new(dst);
    if !destination.is_absolute() || destination.parent().is_none() {
        return Err(ParseError::Tmpfs(spec.to_owned()));
    }
    let options = options
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Tmpfs {
        destination: destination.to_owned(),
        options,
    })
}

/// Parses `-e`: `K=V` is kept as is; a bare `K` takes the value of `K` in
/// berth's own environment, or, when `K` is unset there, stays `K`, which the
/// spec builder reads as "remove K" (Docker's behaviour).
pub fn parse_env(s: &str) -> Result<String, ParseError> {
    let name = s.split_once('=').map_or(s, |(k, _)| k);
    if name.is_empty() {
        return Err(ParseError::Env(s.to_owned()));
    }
    if s.contains('=') {
        return Ok(s.to_owned());
    }
    Ok(match std::env::var_os(s) {
        Some(v) => format!("{s}={}", v.to_string_lossy()),
        None => s.to_owned(),
    })
}

/// Reads an `--env-file` as Docker does: one `K=V` per line, blank lines and
/// lines starting with `#` skipped, the value taken verbatim (no quotes
/// removed), a bare `K` resolved as in [`parse_env`].
pub fn read_env_file(path: &Path) -> Result<Vec<String>, ParseError> {
    let bytes = fs::read(path).map_err(|source| ParseError::EnvFileRead {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ParseError::EnvFileRead {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"),
    })?;
    parse_env_lines(path, &text)
}

fn parse_env_lines(path: &Path, text: &str) -> Result<Vec<String>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| ParseError::EnvFileLine {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        let name = line.split_once('=').map_or(line, |(k, _)| k);
        if name.is_empty() {
            return Err(bad("no variable name".to_owned()));
        }
        if name.contains(char::is_whitespace) {
            return Err(bad(format!("variable {name:?} contains whitespace")));
        }
        vars.push(parse_env(line).map_err(|e| bad(e.to_string()))?);
    }
    Ok(vars)
}

/// Signal names berth knows, without the `SIG` prefix, with their numbers on
/// Linux (x86, arm, riscv and the other asm-generic architectures). The
/// numbers are those of the container's kernel, written out rather than
/// taken from `libc` so parsing is the same whatever berth is built for.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The kernel's real-time signal range as users name it (`RTMIN+3`); glibc
/// reserves 32 and 33 for itself, so `SIGRTMIN` as programs see it is 34.
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal as `kill -s` takes it: a name with or without `SIG`, in any
/// case (`KILL`, `SIGkill`), `RTMIN+N` / `RTMAX-N`, or a number from 1 to 64.
pub fn parse_signal(s: &str) -> Result<i32, ParseError> {
    let err = || ParseError::Signal(s.to_owned());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = |base: i32, off: &str, sign: i32| -> Result<i32, ParseError> {
        let off: i32 = if off.is_empty() {
            0
        } else {
            off.parse().map_err(|_| err())?
        };
        let n = base + sign * off;
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        }
    };
    if let Some(off) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, off.strip_prefix('+').unwrap_or(off), 1);
    }
    if let Some(off) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, off.strip_prefix('-').unwrap_or(off), -1);
    }
    Err(err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::test_support::TempDir;

    #[test]
    fn bytes_like_docker() {
        for (s, want) in [
            ("0", 0),
            ("512", 512),
            ("1b", 1),
            ("1k", 1024),
            ("1K", 1024),
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("64mb", 64 << 20),
            ("64MiB", 64 << 20),
            ("64 m", 64 << 20),
            ("64 ", 64),
            ("2g", 2 << 30),
            ("2GB", 2 << 30),
            ("1.5g", 3 << 29),
            ("1t", 1 << 40),
        ] {
            assert_eq!(parse_bytes(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn bytes_refused() {
        for s in [
            "",
            "-1",
            "-64m",
            "m",
            "64x",
            "64mm",
            "64  m",
            " 64",
            "1e3",
            "64bm",
            "0x10",
            ".5m",
            "1.2.3",
            "99999999999p",
            "64kib2",
        ] {
            assert!(
                matches!(parse_bytes(s), Err(ParseError::Size(_))),
                "{s:?} should be refused"
            );
        }
    }

    #[test]
    fn memory_swap_accepts_minus_one() {
        assert_eq!(parse_memory_swap("-1").unwrap(), -1);
        assert_eq!(parse_memory_swap("128m").unwrap(), 128 << 20);
        assert!(parse_memory_swap("-2").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5").unwrap(), (50_000, 100_000));
        assert_eq!(parse_cpus("1").unwrap(), (100_000, 100_000));
        assert_eq!(parse_cpus("1.25").unwrap(), (125_000, 100_000));
        assert_eq!(parse_cpus("0.01").unwrap(), (1_000, 100_000));
        for s in ["", "0", "0.001", "-1", "abc", "1e2", "inf", "NaN", "1.5.2"] {
            assert!(parse_cpus(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn volumes() {
        let dir = TempDir::new("vol");
        let src = dir.path().to_str().unwrap();
        let v = parse_volume(&format!("{src}:/data")).unwrap();
        assert_eq!(v.source, dir.path());
        assert_eq!(v.destination, Path::new("/data"));
        assert!(!v.readonly);
        assert!(parse_volume(&format!("{src}:/data:ro")).unwrap().readonly);
        assert!(!parse_volume(&format!("{src}:/data:rw")).unwrap().readonly);

        for bad in [
            src.to_owned(),
            format!("{src}:data"),
            format!("{src}:/"),
            format!("{src}:/data:rx"),
            format!("{src}:/data:ro:x"),
            "relative:/data".to_owned(),
            "name:/data".to_owned(),
        ] {
            assert!(
                matches!(parse_volume(&bad), Err(ParseError::Volume { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn volume_source_missing_is_its_own_error() {
        let dir = TempDir::new("vol-missing");
        let missing = dir.path().join("nope");
        let err = parse_volume(&format!("{}:/data", missing.display())).unwrap_err();
        match err {
            ParseError::VolumeSourceMissing(p) => assert_eq!(p, missing),
            other => panic!("wrong error {other:?}"),
        }
    }

    #[test]
    fn tmpfs() {
        let t = parse_tmpfs("/run").unwrap();
        assert_eq!(t.destination, Path::new("/run"));
        assert!(t.options.is_empty());
        let t = parse_tmpfs("/run:size=64m,mode=755").unwrap();
        assert_eq!(t.options, ["size=64m", "mode=755"]);
        assert!(parse_tmpfs("run").is_err());
        assert!(parse_tmpfs("/").is_err());
    }

    #[test]
    fn env() {
        assert_eq!(parse_env("A=1").unwrap(), "A=1");
        assert_eq!(parse_env("A=").unwrap(), "A=");
        assert_eq!(parse_env("A=b=c").unwrap(), "A=b=c");
        assert!(matches!(parse_env("=x"), Err(ParseError::Env(_))));
        assert!(parse_env("").is_err());
        // A bare name takes berth's own value; PATH is always set under cargo.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(parse_env("PATH").unwrap(), format!("PATH={path}"));
        assert_eq!(
            parse_env("BERTH_TEST_SURELY_UNSET").unwrap(),
            "BERTH_TEST_SURELY_UNSET"
        );
    }

    #[test]
    fn env_file() {
        let dir = TempDir::new("envfile");
        let file = dir.path().join("env");
        fs::write(
            &file,
            "\u{feff}# comment\n\nA=1\n  B=two words \nC=\"quoted\"\nBERTH_TEST_SURELY_UNSET\n",
        )
        .unwrap();
        assert_eq!(
            read_env_file(&file).unwrap(),
            [
                "A=1",
                "B=two words ",
                "C=\"quoted\"",
                "BERTH_TEST_SURELY_UNSET"
            ]
        );

        fs::write(&file, "A=1\n=2\n").unwrap();
        match read_env_file(&file).unwrap_err() {
            ParseError::EnvFileLine { line, .. } => assert_eq!(line, 2),
            other => panic!("wrong error {other:?}"),
        }
        fs::write(&file, "MY VAR=1\n").unwrap();
        assert!(matches!(
            read_env_file(&file),
            Err(ParseError::EnvFileLine { line: 1, .. })
        ));
        assert!(matches!(
            read_env_file(&dir.path().join("missing")),
            Err(ParseError::EnvFileRead { .. })
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn signal_numbers_match_the_kernel() {
        for &(name, n) in SIGNALS {
            let want = match name {
                "HUP" => libc::SIGHUP,
                "INT" => libc::SIGINT,
                "QUIT" => libc::SIGQUIT,
                "ILL" => libc::SIGILL,
                "TRAP" => libc::SIGTRAP,
                "ABRT" | "IOT" => libc::SIGABRT,
                "BUS" => libc::SIGBUS,
                "FPE" => libc::SIGFPE,
                "KILL" => libc::SIGKILL,
                "USR1" => libc::SIGUSR1,
                "SEGV" => libc::SIGSEGV,
                "USR2" => libc::SIGUSR2,
                "PIPE" => libc::SIGPIPE,
                "ALRM" => libc::SIGALRM,
                "TERM" => libc::SIGTERM,
                "STKFLT" => libc::SIGSTKFLT,
                "CHLD" => libc::SIGCHLD,
                "CONT" => libc::SIGCONT,
                "STOP" => libc::SIGSTOP,
                "TSTP" => libc::SIGTSTP,
                "TTIN" => libc::SIGTTIN,
                "TTOU" => libc::SIGTTOU,
                "URG" => libc::SIGURG,
                "XCPU" => libc::SIGXCPU,
                "XFSZ" => libc::SIGXFSZ,
                "VTALRM" => libc::SIGVTALRM,
                "PROF" => libc::SIGPROF,
                "WINCH" => libc::SIGWINCH,
                "IO" | "POLL" => libc::SIGIO,
                "PWR" => libc::SIGPWR,
                "SYS" => libc::SIGSYS,
                other => panic!("no libc constant listed for {other}"),
            };
            assert_eq!(n, want, "SIG{name}");
        }
        assert_eq!(RTMIN, libc::SIGRTMIN());
        assert_eq!(RTMAX, libc::SIGRTMAX());
    }

    #[test]
    fn signals() {
        for (s, want) in [
            ("KILL", 9),
            ("SIGKILL", 9),
            ("kill", 9),
            ("SigTerm", 15),
            ("9", 9),
            ("15", 15),
            ("HUP", 1),
            ("USR1", 10),
            ("SIGWINCH", 28),
            ("RTMIN", 34),
            ("RTMIN+3", 37),
            ("SIGRTMAX-1", 63),
            ("64", 64),
        ] {
            assert_eq!(parse_signal(s).unwrap(), want, "{s}");
        }
        for s in [
            "", "0", "-9", "65", "SIG", "KIL", "SIGFOO", "RTMIN+31", "RTMAX-31", "9x",
        ] {
            assert!(parse_signal(s).is_err(), "{s:?} should be refused");
        }
    }
}
