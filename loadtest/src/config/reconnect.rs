//! The reconnect mode: `--reconnect <share>` on the command line (taken out
//! before goose parses the rest, see [`super::command_line`]), or
//! `LOAD_RECONNECT`. That share of the chatters drops its socket now and
//! then while sending goes on, and catches up with `join {"since"}`.

use anyhow::{bail, Context};

use super::env_value;

/// The flag, as errors name it.
const FLAG: &str = "--reconnect";

/// The share of chatters that reconnect, from the flag (which wins) or
/// `LOAD_RECONNECT`; `None` when neither is given or the share is 0.
pub fn resolve(flag: Option<&str>) -> anyhow::Result<Option<f64>> {
    let (source, text) = match flag {
        Some(text) => (FLAG, Some(text.trim().to_owned())),
        None => ("LOAD_RECONNECT", env_value("LOAD_RECONNECT")?),
    };
    let Some(text) = text else {
        return Ok(None);
    };
    let share = text
        .parse::<f64>()
        .ok()
        .filter(|share| (0.0..=1.0).contains(share))
        .with_context(|| {
            format!(
                "{source} {text:?} is not a share between 0 and 1 (0.2 is a fifth of the chatters)"
            )
        })?;
    Ok((share > 0.0).then_some(share))
}

/// The modes the reconnect mode cannot share a run with.
pub fn check(chaos: bool, capacity: bool) -> anyhow::Result<()> {
    if chaos {
        // The chaos mode reconnects on its own terms (after a fault, with a
        // catch-up over HTTP) and its checker reads a history this mode
        // does not write.
        bail!("LOAD_RECONNECT (--reconnect) is not for the chaos mode: leave it unset with LOAD_CHAOS");
    }
    if capacity {
        // The curve would charge the reconnects' pauses and replays to the
        // rate: a step could fail for the drops, not for the load.
        bail!("LOAD_RECONNECT (--reconnect) is not for the capacity mode: measure the curve without drops");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_between_zero_and_one_is_taken_and_zero_is_off() {
        assert_eq!(resolve(Some("0.2")).unwrap(), Some(0.2));
        assert_eq!(resolve(Some(" 1 ")).unwrap(), Some(1.0));
        assert_eq!(resolve(Some("0")).unwrap(), None);
        assert!(resolve(Some("1.5")).is_err());
        assert!(resolve(Some("-0.1")).is_err());
        assert!(resolve(Some("a fifth")).is_err());
    }

    #[test]
    fn the_chaos_and_capacity_modes_are_refused() {
        assert!(check(false, false).is_ok());
        let error = check(true, false).unwrap_err().to_string();
        assert!(error.contains("chaos"), "{error}");
        let error = check(false, true).unwrap_err().to_string();
        assert!(error.contains("capacity"), "{error}");
    }
}
