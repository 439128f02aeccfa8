//! What a program gets when the policy gives up, and how to branch on it:
//! `cargo run -p novita-reqwest --example failure_advice`.

use novita_mock::{Fault, MockServer, Route};
use novita_reqwest::{ChatRequest, Client, ErrorKind};

#[tokio::main]
async fn main() -> Result<(), novita_reqwest::Error> {
    // A mock whose account has run out of balance: nothing a retry can fix.
    let server = MockServer::start();
    server.always(
        Route::ChatCompletions,
        None,
        Fault::status(403).reason("NOT_ENOUGH_BALANCE"),
    );
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()?;
    match client
        .chat(&ChatRequest::new("deepseek/deepseek-v3", "Hello"))
        .await
    {
        Ok(answer) => println!("{}", answer.text()),
        Err(error) => {
            // Code branches on the kind; a human reads the advice.
            match error.kind() {
                ErrorKind::Permission => eprintln!("-- permission problem, not retried --"),
                ErrorKind::RateLimited | ErrorKind::Unavailable => eprintln!("-- try later --"),
                other => eprintln!("-- {other} --"),
            }
            eprintln!("{}", error.advice());
        }
    }
    Ok(())
}
