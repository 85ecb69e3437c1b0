//! The text of a load-test message: its sequence number and scheduled send
//! time travel inside it, so the partner can time and order it without
//! asking anybody.

/// Marks a message as the load tool's.
const PREFIX: &str = "lt";

/// The contract's largest message text.
pub const MAX_TEXT: usize = 4096;

/// `lt <seq> <scheduled µs> xxxx…`, padded to `size` characters (never
/// shorter than the header, never longer than [`MAX_TEXT`]).
pub fn encode(seq: u64, scheduled_us: u64, size: usize) -> String {
    let mut text = format!("{PREFIX} {seq} {scheduled_us} ");
    let size = size.min(MAX_TEXT);
    if text.len() < size {
        text.extend(std::iter::repeat_n('x', size - text.len()));
    }
    text
}

/// The sequence number and scheduled send time, if `text` is a load-test message.
pub fn decode(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split(' ');
    if fields.next()? != PREFIX {
        return None;
    }
    let seq = fields.next()?.parse().ok()?;
    let scheduled_us = fields.next()?.parse().ok()?;
    Some((seq, scheduled_us))
}

/// The `clientMessageId` of message `seq` of chatter `index` in run `tag`:
/// unique per run, and it names its author and sequence number.
pub fn client_message_id(tag: &str, index: usize, seq: u64) -> String {
    format!("{tag}-{index}-{seq}")
}

/// The chatter and sequence number of a [`client_message_id`] of run `tag`.
pub fn parse_client_message_id(tag: &str, id: &str) -> Option<(usize, u64)> {
    let mut fields = id.rsplitn(3, '-');
    let seq = fields.next()?.parse().ok()?;
    let index = fields.next()?.parse().ok()?;
    (fields.next()? == tag).then_some((index, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_message_id_names_its_author_and_sequence_number() {
        let id = client_message_id("k3x9", 17, 42);
        assert_eq!(parse_client_message_id("k3x9", &id), Some((17, 42)));
        assert_eq!(parse_client_message_id("other", &id), None);
        assert_eq!(parse_client_message_id("k3x9", "k3x9-17"), None);
    }

    #[test]
    fn a_message_round_trips_at_the_requested_size() {
        let text = encode(42, 1_234_567, 100);
        assert_eq!(text.len(), 100);
        assert_eq!(decode(&text), Some((42, 1_234_567)));
    }

    #[test]
    fn a_tiny_size_keeps_the_header_and_a_huge_one_is_capped() {
        assert_eq!(decode(&encode(1, 2, 1)), Some((1, 2)));
        assert_eq!(encode(1, 2, 10_000).len(), MAX_TEXT);
    }

    #[test]
    fn other_texts_are_not_load_test_messages() {
        assert_eq!(decode("hello there"), None);
        assert_eq!(decode("lt x 1"), None);
    }
}
