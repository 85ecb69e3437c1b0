//! The room size: `--room-size N` on the command line, or `LOAD_ROOM_SIZE`.
//!
//! Goose owns the command line and refuses flags it does not know, so this
//! one is taken out before goose parses the rest.

use anyhow::{bail, Context};
use goose::config::GooseConfiguration;

use super::env_value;

/// This tool's own flag.
const FLAG: &str = "--room-size";
/// Members per room when neither the flag nor `LOAD_ROOM_SIZE` is given:
/// pairs in private rooms.
pub const DEFAULT_ROOM_SIZE: usize = 2;

/// What `-h` adds above goose's own help.
const HELP: &str = "\
loadtest's own option (see loadtest/README.md for the LOAD_* variables):
  --room-size <N>  Chatters per room [default: 2, or LOAD_ROOM_SIZE]: 2 puts them in pairs
                   in private rooms; more puts them in group rooms of N (--users must be a
                   multiple of N), each message going to the N-1 others.

";

/// Goose's configuration from the command line, and `--room-size` if given.
/// `-h`/`--help` print the help and exit, as goose does.
pub fn command_line() -> anyhow::Result<(GooseConfiguration, Option<String>)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (room_size, rest) = take_flag(&args)?;
    let help = rest.iter().any(|arg| arg == "-h" || arg == "--help");
    if help {
        print!("{HELP}");
    }
    let Some(room_size) = room_size else {
        // The command line is goose's alone: let goose report its own
        // mistakes, and print its help.
        return Ok((GooseConfiguration::parse_args_default_or_exit(), None));
    };
    if help {
        println!("(goose's options are listed without {FLAG} on the command line)");
        std::process::exit(0);
    }
    let goose = GooseConfiguration::parse_args_default(&rest)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok((goose, Some(room_size)))
}

/// Takes `--room-size N` or `--room-size=N` (the last one wins) out of
/// `args`; the rest is goose's.
fn take_flag(args: &[String]) -> anyhow::Result<(Option<String>, Vec<String>)> {
    let mut value = None;
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == FLAG {
            let next = args
                .next()
                .with_context(|| format!("{FLAG} needs a value: {FLAG} 10"))?;
            value = Some(next.clone());
        } else if let Some(inline) = arg.strip_prefix(FLAG).and_then(|v| v.strip_prefix('=')) {
            value = Some(inline.to_owned());
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((value, rest))
}

/// The room size from the flag (which wins) or `LOAD_ROOM_SIZE`, checked
/// against the number of chatters.
pub fn resolve(flag: Option<&str>, users: usize) -> anyhow::Result<usize> {
    let (source, text) = match flag {
        Some(text) => (FLAG, Some(text.trim().to_owned())),
        None => ("LOAD_ROOM_SIZE", env_value("LOAD_ROOM_SIZE")?),
    };
    let size = match text {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|size| *size >= 2)
            .with_context(|| format!("{source} {text:?} is not a whole number of at least 2"))?,
        None => DEFAULT_ROOM_SIZE,
    };
    check(size, users)?;
    Ok(size)
}

/// Every room must be full: `users` a multiple of `size`.
fn check(size: usize, users: usize) -> anyhow::Result<()> {
    if size == 2 {
        if users < 2 || !users.is_multiple_of(2) {
            bail!("--users must be an even number of at least 2 (chatters come in pairs), got {users}");
        }
        return Ok(());
    }
    if users < size || !users.is_multiple_of(size) {
        let below = users / size * size;
        let above = below + size;
        let suggestion = if below >= size {
            format!("-u {below} or -u {above}")
        } else {
            format!("-u {above}")
        };
        bail!(
            "--users {users} is not a multiple of --room-size {size}: every room needs {size} members (try {suggestion})"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn the_flag_is_taken_out_and_goose_keeps_the_rest() {
        let (size, rest) =
            take_flag(&strings(&["-u", "100", "--room-size", "10", "-r", "50"])).unwrap();
        assert_eq!(size.as_deref(), Some("10"));
        assert_eq!(rest, strings(&["-u", "100", "-r", "50"]));
        let (size, rest) = take_flag(&strings(&["--room-size=5", "-u", "10"])).unwrap();
        assert_eq!(size.as_deref(), Some("5"));
        assert_eq!(rest, strings(&["-u", "10"]));
        let (size, rest) = take_flag(&strings(&["-u", "10"])).unwrap();
        assert_eq!((size, rest.len()), (None, 2));
        assert!(take_flag(&strings(&["-u", "10", "--room-size"])).is_err());
    }

    #[test]
    fn users_must_fill_every_room() {
        assert!(check(10, 100).is_ok());
        let error = check(10, 105).unwrap_err().to_string();
        assert!(
            error.contains("not a multiple of --room-size 10"),
            "{error}"
        );
        assert!(error.contains("-u 100 or -u 110"), "{error}");
        let error = check(10, 4).unwrap_err().to_string();
        assert!(error.contains("try -u 10)"), "{error}");
        assert!(check(2, 7).unwrap_err().to_string().contains("even"));
        assert!(check(2, 2).is_ok());
    }

    #[test]
    fn the_flag_must_be_a_room_of_two_or_more() {
        assert_eq!(resolve(Some("10"), 100).unwrap(), 10);
        assert_eq!(resolve(Some(" 2 "), 4).unwrap(), 2);
        assert!(resolve(Some("1"), 100).is_err());
        assert!(resolve(Some("ten"), 100).is_err());
    }
}
