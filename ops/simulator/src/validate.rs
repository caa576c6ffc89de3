//! `rakuda-sim validate`: a message checked with the bridge's own validator, so other tools
//! (the web package's tests) can check what they publish against the real contract.

use std::io::Read;

use rakuda_schema::{Reject, Validator};

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot read stdin: {0}")]
    Stdin(#[from] std::io::Error),
    #[error("rejected: {0}")]
    Rejected(Reject),
}

/// Reads the whole message from stdin and checks it.
pub fn stdin(channel: &str, max_bytes: usize) -> Result<(), ValidateError> {
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;
    check(channel, max_bytes, message)
}

/// Accepts `message` if the bridge would publish it on `channel`.
pub fn check(channel: &str, max_bytes: usize, mut message: Vec<u8>) -> Result<(), ValidateError> {
    // A trailing newline from `echo` is not part of the message.
    if message.last() == Some(&b'\n') {
        message.pop();
    }
    Validator::new(max_bytes)
        .validate(channel, &message)
        .map(|_| ())
        .map_err(ValidateError::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = r#"{"type":"ORDER_RECEIVED","payload":{"id":"o1","action":"created"},"timestamp":"2026-11-22T10:00:00.000Z"}"#;

    #[test]
    fn a_trailing_newline_is_not_part_of_the_message() {
        let message = format!("{ORDER}\n").into_bytes();
        assert!(check("orders", rakuda_schema::DEFAULT_MAX_EVENT_BYTES, message).is_ok());
    }

    #[test]
    fn a_rejection_says_why() {
        let error = check("inventory", 4096, ORDER.as_bytes().to_vec()).expect_err("wrong channel");
        let error = error.to_string();
        assert!(
            error.starts_with("rejected: type_channel_mismatch"),
            "{error}"
        );
    }
}
