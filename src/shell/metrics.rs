//! The `metrics=ADDR:PORT` endpoint: a tiny HTTP/1.0 responder serving the Prometheus text
//! exposition at `/metrics` (and `/`), one client at a time, each bounded in time and size.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Longest request head read.
const MAX_REQUEST: usize = 8192;

/// Serves `render()` to every client of `l`, forever.
pub fn serve(l: TcpListener, render: impl Fn() -> String) {
    for s in l.incoming().flatten() {
        let _ = answer(s, &render);
    }
}

/// The response for a request head (`GET /metrics HTTP/1.1 …`).
pub fn response(head: &str, render: &dyn Fn() -> String) -> String {
    let mut w = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let body = if method == "HEAD" {
        String::new()
    } else {
        body
    };
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn answer(mut s: TcpStream, render: &dyn Fn() -> String) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    s.write_all(response(&head, render).as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = || "rswan_up 1\n".to_string();
        let ok = response("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4"));
        assert!(
            ok.ends_with("Content-Length: 11\r\nConnection: close\r\n\r\nrswan_up 1\n"),
            "{ok}"
        );
        assert!(response("GET /x HTTP/1.0\r\n\r\n", &r).starts_with("HTTP/1.0 404"));
        assert!(response("POST /metrics HTTP/1.0\r\n\r\n", &r).starts_with("HTTP/1.0 405"));
        assert!(response("HEAD / HTTP/1.0\r\n\r\n", &r).ends_with("\r\n\r\n"));
    }
}
