//! The control socket's request parser ([`crate::shell::control::parse_request`]): what any
//! local process that can connect to `pluto.ctl` sends. The input is tried both as a whole
//! frame and as a body behind a correct length prefix (so most inputs get past the length
//! check); an accepted request must join back into exactly the body it came from.

use crate::shell::control::{parse_request, RequestError, MAX_REQUEST};

/// Harness of the `control_request` target.
pub fn control_request(data: &[u8]) {
    let _ = check(data);
    let mut frame = (data.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(data);
    let framed = check(&frame);
    if data.len() <= MAX_REQUEST {
        // A well-framed body is refused only for not being UTF-8.
        match framed {
            Ok(()) => assert!(std::str::from_utf8(data).is_ok()),
            Err(e) => assert_eq!(e, RequestError::NotUtf8),
        }
    }
}

fn check(frame: &[u8]) -> Result<(), RequestError> {
    let args = parse_request(frame)?;
    let body = &frame[4..];
    assert_eq!(args.join("\0").as_bytes(), body, "request round trip");
    assert!(
        !(args.len() == 1 && args[0].is_empty()),
        "empty body is no arguments"
    );
    Ok(())
}
