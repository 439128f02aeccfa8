//! Recording of requests, and starting and stopping the server from sync and async code.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use common::{bearer, chat, chat_body, path, send, send_to};
use novita_mock::{Fault, MockServer, Route};

const MODEL: &str = "meta-llama/llama-3.1-8b-instruct";

#[test]
fn requests_are_recorded_with_their_details() {
    let server = MockServer::start();
    chat(&server, &chat_body(MODEL, "first", false));
    chat(&server, &chat_body(MODEL, "second", true));
    let wrong = "Bearer sk_not_the_key";
    let body = chat_body("nobody/none", "third", false);
    send(
        &server,
        "POST",
        &path(&server, "/chat/completions"),
        &[("authorization", wrong), ("x-trace", "t-1")],
        body.as_bytes(),
    );
    send(&server, "GET", "/nowhere", &[], b"");

    let recorded = server.requests();
    assert_eq!(recorded.len(), 4);
    let [first, second, third, fourth] = &recorded[..] else {
        unreachable!()
    };

    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/openai/v1/chat/completions");
    assert_eq!(first.route, Some(Route::ChatCompletions));
    assert_eq!(first.model.as_deref(), Some(MODEL));
    assert!(!first.stream);
    assert!(first.authorized);
    assert_eq!(first.header("authorization"), Some("<redacted>"));
    assert_eq!(first.body, chat_body(MODEL, "first", false).as_bytes());
    assert_eq!(first.status, 200);

    assert!(second.stream);
    assert_eq!(second.status, 200);
    assert!(second.at >= first.at);

    assert!(!third.authorized);
    assert_eq!(third.model.as_deref(), Some("nobody/none"));
    assert_eq!(third.status, 401);
    assert_eq!(third.header("x-trace"), Some("t-1"));
    assert!(
        third
            .headers
            .iter()
            .all(|(name, value)| name == &name.to_ascii_lowercase() && !value.contains("sk_not"))
    );

    assert_eq!(fourth.route, None);
    assert_eq!(fourth.status, 404);
    assert!(fourth.at >= third.at);

    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[test]
fn dropping_with_a_request_in_flight_does_not_hang() {
    let server = MockServer::start();
    server.always(
        Route::ChatCompletions,
        None,
        Fault::ok().delay(Duration::from_secs(3600)),
    );
    let (addr, route, auth) = (
        server.addr(),
        path(&server, "/chat/completions"),
        bearer(&server),
    );
    let client = thread::spawn(move || {
        let body = chat_body(MODEL, "wait", false);
        send_to(
            addr,
            "POST",
            &route,
            &[("authorization", &auth)],
            body.as_bytes(),
        )
    });
    // The request is recorded before its delay starts; spin until it has arrived.
    while server.requests().is_empty() {
        thread::yield_now();
    }
    drop(server);
    let reply = client.join().unwrap();
    assert_eq!(reply.status, 0);
    assert!(reply.body.is_empty());
}

fn round_trip(server: &MockServer) {
    let reply = chat(server, &chat_body(MODEL, "async", false));
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn works_and_drops_inside_a_current_thread_runtime() {
    let server = MockServer::start();
    round_trip(&server);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_and_drops_inside_a_multi_thread_runtime() {
    let server = MockServer::start();
    let server = tokio::task::spawn_blocking(move || {
        round_trip(&server);
        server
    })
    .await
    .unwrap();
    drop(server);
}

#[test]
fn one_connection_serves_several_requests() {
    let server = MockServer::start();
    server.script(Route::ChatCompletions, None, [Fault::status(503)]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = chat_body(MODEL, "again", false);
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: mock\r\nauthorization: {}\r\ncontent-length: {}\r\n\r\n{body}",
        path(&server, "/chat/completions"),
        bearer(&server),
        body.len(),
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        stream.write_all(request.as_bytes()).unwrap();
        statuses.push(read_one_response(&mut stream));
    }
    assert_eq!(statuses, [503, 200, 200]);
}

/// Reads one `content-length` response off a kept-alive connection and returns its status.
fn read_one_response(stream: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut byte = [0; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}
