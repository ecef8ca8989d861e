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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn parse_request_cases() {
        assert_eq!(
            parse_request(&frame(b"auto\0--up\0net")),
            Ok(vec!["auto".into(), "--up".into(), "net".into()])
        );
        assert_eq!(parse_request(&frame(b"")), Ok(vec![]));
        assert_eq!(
            parse_request(&frame(b"\0")),
            Ok(vec![String::new(), String::new()])
        );
        assert_eq!(parse_request(&frame(b"a\xff")), Err(RequestError::NotUtf8));
        assert_eq!(parse_request(&[0, 0, 0]), Err(RequestError::Truncated));
        assert_eq!(
            parse_request(&[0, 0, 0, 5, b'a']),
            Err(RequestError::Truncated)
        );
        assert_eq!(
            parse_request(&[0, 0, 0, 0, b'a']),
            Err(RequestError::TrailingBytes)
        );
        let too_large = ((MAX_REQUEST + 1) as u32).to_be_bytes();
        assert_eq!(parse_request(&too_large), Err(RequestError::TooLarge));
        // The error reaches read_request's callers as InvalidData with its text.
        let e = std::io::Error::from(RequestError::TooLarge);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "request too large");
    }

    /// `read_request` reads a frame off the socket and parses it with `parse_request`.
    #[test]
    fn read_request_over_a_socket() {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let (mut client, server) = UnixStream::pair().expect("socketpair");
        client.write_all(&frame(b"look\0--all")).expect("write");
        let (args, _reply) = crate::shell::control::read_request(server).expect("request");
        assert_eq!(args, ["look", "--all"]);
        let (mut client, server) = UnixStream::pair().expect("socketpair");
        client.write_all(&frame(b"\xc3")).expect("write");
        let e = crate::shell::control::read_request(server).expect_err("not UTF-8");
        assert_eq!(e.to_string(), "request is not UTF-8");
    }
}
