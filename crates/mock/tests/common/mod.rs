//! A tiny raw HTTP/1.1 client over `std::net::TcpStream`, so the tests see exactly what went
//! over the wire: partial bodies, missing terminators and connection resets included.

#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use novita_mock::MockServer;
use serde_json::Value;

/// What the client saw: whatever part of a response arrived, and how reading ended.
#[derive(Debug)]
pub struct Reply {
    /// The status, or 0 when no status line arrived.
    pub status: u16,
    /// Response headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body with chunked framing removed.
    pub body: Vec<u8>,
    /// Whether the body was complete (full content-length, or the final zero chunk).
    pub complete: bool,
    /// The read error that ended the exchange, if any.
    pub error: Option<io::ErrorKind>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }
}

/// The path of a route below the server's prefix, e.g. `/openai/v1/chat/completions`.
pub fn path(server: &MockServer, suffix: &str) -> String {
    let origin = format!("http://{}", server.addr());
    format!(
        "{}{suffix}",
        server.base_url().strip_prefix(&origin).unwrap()
    )
}

/// The bearer header for the server's own key.
pub fn bearer(server: &MockServer) -> String {
    format!("Bearer {}", server.api_key())
}

/// `POST {prefix}/chat/completions` with the right key.
pub fn chat(server: &MockServer, body: &str) -> Reply {
    let auth = bearer(server);
    send(
        server,
        "POST",
        &path(server, "/chat/completions"),
        &[("authorization", &auth)],
        body.as_bytes(),
    )
}

/// A chat body for `model` with one user message.
pub fn chat_body(model: &str, content: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "messages": [{ "role": "user", "content": content }],
        "stream": stream,
    })
    .to_string()
}

/// Sends one request on a fresh connection and reads until the server closes it.
pub fn send(
    server: &MockServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    send_to(server.addr(), method, path, headers, body)
}

/// Like [`send`], for a server known only by its address.
pub fn send_to(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect to the mock");
    // A safety net against a hung test, not a synchronisation device.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        addr,
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("content-type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();

    let mut raw = Vec::new();
    let mut buf = [0; 8192];
    let error = loop {
        match stream.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => break Some(err.kind()),
        }
    };
    parse(&raw, error)
}

fn parse(raw: &[u8], error: Option<io::ErrorKind>) -> Reply {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            complete: false,
            error,
        };
    };
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let rest = &raw[end + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let (body, complete) = if find("transfer-encoding").is_some_and(|v| v == "chunked") {
        dechunk(rest)
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().unwrap();
        (rest[..len.min(rest.len())].to_vec(), rest.len() >= len)
    } else {
        (rest.to_vec(), error.is_none())
    };
    Reply {
        status,
        headers,
        body,
        complete,
        error,
    }
}

/// Decodes as many whole chunks as arrived; `true` if the final zero chunk was among them.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size = std::str::from_utf8(&rest[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        let data = &rest[line_end + 2..];
        if size == 0 {
            return (body, true);
        }
        if data.len() < size + 2 {
            return (body, false);
        }
        body.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
}
