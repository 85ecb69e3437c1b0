//! This tool's own flags, `--room-size N`, `--mark-read` and
//! `--reconnect <share>`, taken out of
//! the command line before goose parses the rest: goose owns the command
//! line and refuses flags it does not know.

use anyhow::Context;
use goose::config::GooseConfiguration;

/// Chatters per room (see [`super::room_size`]).
const ROOM_SIZE: &str = "--room-size";
/// Chatters mark their room read (see `LOAD_MARK_READ`).
const MARK_READ: &str = "--mark-read";
/// A share of the chatters reconnects now and then (see `LOAD_RECONNECT`).
const RECONNECT: &str = "--reconnect";

/// What `-h` adds above goose's own help.
const HELP: &str = "\
loadtest's own options (see loadtest/README.md for the LOAD_* variables):
  --room-size <N>  Chatters per room [default: 2, or LOAD_ROOM_SIZE]: 2 puts them in pairs
                   in private rooms; more puts them in group rooms of N (--users must be a
                   multiple of N), each message going to the N-1 others.
  --mark-read      Each chatter marks its room read up to the newest message received, at
                   most once a second, as a client with the room open would [or
                   LOAD_MARK_READ=1]; needs LOAD_PIPELINE of 2 or more.
  --reconnect <S>  That share of the chatters (0.2 is a fifth) drops its socket every few
                   seconds while sending goes on, opens another and joins with `since`,
                   catching up on what it missed [or LOAD_RECONNECT]; not with the chaos or
                   capacity mode.

";

/// This tool's flags, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnFlags {
    /// `--room-size`'s value, if given (the last one wins).
    pub room_size: Option<String>,
    /// `--mark-read` was given.
    pub mark_read: bool,
    /// `--reconnect`'s value, if given (the last one wins).
    pub reconnect: Option<String>,
}

impl OwnFlags {
    fn any(&self) -> bool {
        self.room_size.is_some() || self.mark_read || self.reconnect.is_some()
    }
}

/// Goose's configuration from the command line, and this tool's own flags.
/// `-h`/`--help` print the help and exit, as goose does.
pub fn parse() -> anyhow::Result<(GooseConfiguration, OwnFlags)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (own, rest) = take_flags(&args)?;
    let help = rest.iter().any(|arg| arg == "-h" || arg == "--help");
    if help {
        print!("{HELP}");
    }
    if !own.any() {
        // The command line is goose's alone: let goose report its own
        // mistakes, and print its help.
        return Ok((GooseConfiguration::parse_args_default_or_exit(), own));
    }
    if help {
        println!(
            "(goose's options are listed without {ROOM_SIZE}, {MARK_READ} and {RECONNECT} on the command line)"
        );
        std::process::exit(0);
    }
    let goose = GooseConfiguration::parse_args_default(&rest)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok((goose, own))
}

/// Takes `--room-size N` (or `--room-size=N`), `--mark-read` and
/// `--reconnect S` (or `--reconnect=S`) out of `args`; the rest is goose's.
fn take_flags(args: &[String]) -> anyhow::Result<(OwnFlags, Vec<String>)> {
    let mut own = OwnFlags::default();
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == ROOM_SIZE {
            let next = args
                .next()
                .with_context(|| format!("{ROOM_SIZE} needs a value: {ROOM_SIZE} 10"))?;
            own.room_size = Some(next.clone());
        } else if let Some(inline) = arg
            .strip_prefix(ROOM_SIZE)
            .and_then(|v| v.strip_prefix('='))
        {
            own.room_size = Some(inline.to_owned());
        } else if arg == RECONNECT {
            let next = args
                .next()
                .with_context(|| format!("{RECONNECT} needs a share: {RECONNECT} 0.2"))?;
            own.reconnect = Some(next.clone());
        } else if let Some(inline) = arg
            .strip_prefix(RECONNECT)
            .and_then(|v| v.strip_prefix('='))
        {
            own.reconnect = Some(inline.to_owned());
        } else if arg == MARK_READ {
            own.mark_read = true;
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((own, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn the_room_size_is_taken_out_and_goose_keeps_the_rest() {
        let (own, rest) =
            take_flags(&strings(&["-u", "100", "--room-size", "10", "-r", "50"])).unwrap();
        assert_eq!(own.room_size.as_deref(), Some("10"));
        assert_eq!(rest, strings(&["-u", "100", "-r", "50"]));
        let (own, rest) = take_flags(&strings(&["--room-size=5", "-u", "10"])).unwrap();
        assert_eq!(own.room_size.as_deref(), Some("5"));
        assert_eq!(rest, strings(&["-u", "10"]));
        let (own, rest) = take_flags(&strings(&["-u", "10"])).unwrap();
        assert_eq!((own, rest.len()), (OwnFlags::default(), 2));
        assert!(take_flags(&strings(&["-u", "10", "--room-size"])).is_err());
    }

    #[test]
    fn mark_read_is_a_switch_taken_out_wherever_it_stands() {
        let (own, rest) =
            take_flags(&strings(&["--mark-read", "-u", "20", "--room-size", "10"])).unwrap();
        assert!(own.mark_read);
        assert_eq!(own.room_size.as_deref(), Some("10"));
        assert_eq!(rest, strings(&["-u", "20"]));
        let (own, _) = take_flags(&strings(&["-u", "20", "--mark-read"])).unwrap();
        assert!(own.mark_read && own.room_size.is_none());
    }

    #[test]
    fn the_reconnect_share_is_taken_out_in_either_form() {
        let (own, rest) =
            take_flags(&strings(&["-u", "20", "--reconnect", "0.2", "--mark-read"])).unwrap();
        assert_eq!(own.reconnect.as_deref(), Some("0.2"));
        assert!(own.mark_read);
        assert_eq!(rest, strings(&["-u", "20"]));
        let (own, rest) = take_flags(&strings(&["--reconnect=0.5", "-u", "10"])).unwrap();
        assert_eq!(own.reconnect.as_deref(), Some("0.5"));
        assert_eq!(rest, strings(&["-u", "10"]));
        assert!(take_flags(&strings(&["-u", "10", "--reconnect"])).is_err());
    }
}
