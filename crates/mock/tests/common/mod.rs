//! A tiny raw HTTP/1.1 client over `std::net::TcpStream`, so the tests see exactly what went
//! over the wire: partial bodies, missing terminators and connection resets included.

#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use novita_mock::MockServer;
use serde_json::{Map, Value, json};

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

    /// The chunks of an SSE body that ended with `data: [DONE]`, parsed.
    pub fn chunks(&self) -> Vec<Value> {
        let events = self.events();
        let (done, chunks) = events.split_last().expect("at least one event");
        assert_eq!(done, "[DONE]", "the stream ends with [DONE]");
        chunks
            .iter()
            .map(|chunk| serde_json::from_str(chunk).expect("a JSON chunk"))
            .collect()
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

/// The inverse of `novita_mock::chat_chunks`, written from its documented rules, as a
/// client's stream assembler would: header and unknown top-level fields from any chunk,
/// choices by `index` in order of first appearance, text and tool-call arguments
/// concatenated, log-probability arrays extended, anything else set by the latest chunk.
/// A message without `content` gets `"content": null`.
pub fn assemble(chunks: &[Value]) -> Value {
    let mut completion = Map::new();
    let mut choices: Vec<(Value, Map<String, Value>)> = Vec::new();
    for chunk in chunks {
        for (key, value) in chunk.as_object().expect("a chunk is an object") {
            match key.as_str() {
                "object" => {}
                "choices" => {
                    for entry in value.as_array().expect("choices is an array") {
                        merge_choice(&mut choices, entry);
                    }
                }
                _ => {
                    completion.insert(key.clone(), value.clone());
                }
            }
        }
    }
    completion.insert("object".to_owned(), json!("chat.completion"));
    let choices = choices
        .into_iter()
        .map(|(_, mut choice)| {
            if let Some(Value::Object(message)) = choice.get_mut("message") {
                message.entry("content").or_insert(Value::Null);
            }
            Value::Object(choice)
        })
        .collect();
    completion.insert("choices".to_owned(), Value::Array(choices));
    Value::Object(completion)
}

fn merge_choice(choices: &mut Vec<(Value, Map<String, Value>)>, entry: &Value) {
    let index = entry["index"].clone();
    let at = match choices.iter().position(|(i, _)| *i == index) {
        Some(at) => at,
        None => {
            let mut choice = Map::new();
            choice.insert("index".to_owned(), index.clone());
            choice.insert("message".to_owned(), json!({}));
            choices.push((index, choice));
            choices.len() - 1
        }
    };
    let choice = &mut choices[at].1;
    for (key, value) in entry.as_object().expect("a choice entry is an object") {
        match key.as_str() {
            "index" => {}
            "delta" => {
                let Some(Value::Object(message)) = choice.get_mut("message") else {
                    unreachable!("every choice starts with a message object");
                };
                merge_delta(message, value);
            }
            "logprobs" => match (choice.get_mut("logprobs"), value) {
                (Some(Value::Object(existing)), Value::Object(more)) => {
                    for (key, value) in more {
                        match (existing.get_mut(key), value) {
                            (Some(Value::Array(entries)), Value::Array(extra)) => {
                                entries.extend(extra.iter().cloned());
                            }
                            _ => {
                                existing.insert(key.clone(), value.clone());
                            }
                        }
                    }
                }
                _ => {
                    choice.insert(key.clone(), value.clone());
                }
            },
            _ => {
                choice.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_delta(message: &mut Map<String, Value>, delta: &Value) {
    for (key, value) in delta.as_object().expect("a delta is an object") {
        match (key.as_str(), value) {
            ("content" | "reasoning_content" | "refusal", Value::String(piece)) => {
                append(message.entry(key.as_str()).or_insert(json!("")), piece);
            }
            ("tool_calls", Value::Array(calls)) => {
                let all = message.entry("tool_calls").or_insert(json!([]));
                let all = all.as_array_mut().expect("tool_calls is an array");
                for call in calls {
                    let i = usize::try_from(call["index"].as_u64().expect("a call index")).unwrap();
                    while all.len() <= i {
                        all.push(json!({}));
                    }
                    merge_call(all[i].as_object_mut().unwrap(), call);
                }
            }
            _ => {
                message.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_call(target: &mut Map<String, Value>, call: &Value) {
    for (key, value) in call.as_object().expect("a tool call is an object") {
        match (key.as_str(), value) {
            ("index", _) => {}
            ("function", Value::Object(function)) => {
                let existing = target.entry("function").or_insert(json!({}));
                let existing = existing.as_object_mut().expect("function is an object");
                for (key, value) in function {
                    match (existing.get_mut(key), value) {
                        (Some(sofar @ Value::String(_)), Value::String(piece))
                            if key == "arguments" =>
                        {
                            append(sofar, piece);
                        }
                        _ => {
                            existing.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

fn append(text: &mut Value, piece: &str) {
    let Value::String(text) = text else {
        panic!("appending to a non-string {text}");
    };
    text.push_str(piece);
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
