//! The room size: `--room-size N` on the command line (taken out before
//! goose parses the rest, see [`super::command_line`]), or `LOAD_ROOM_SIZE`.

use anyhow::{bail, Context};

use super::env_value;

/// The flag, as errors name it.
const FLAG: &str = "--room-size";
/// Members per room when neither the flag nor `LOAD_ROOM_SIZE` is given:
/// pairs in private rooms.
pub const DEFAULT_ROOM_SIZE: usize = 2;

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
