//! One chat completion, and what the call took: `cargo run -p novita-reqwest --example chat`.

mod common;

use novita_reqwest::ChatRequest;

#[tokio::main]
async fn main() -> Result<(), novita_reqwest::Error> {
    let (builder, _mock) = common::target();
    let client = builder.build()?;
    let request = ChatRequest::new(common::MODEL, "Say hello in French.");
    let answer = client.chat(&request).await?;
    println!("{}", answer.text());
    if let Some(reasoning) = answer.reasoning() {
        println!("(reasoning: {reasoning})");
    }
    // Attempts, waits, fallback and the switch to streaming, in one line.
    println!("({})", answer.report);
    Ok(())
}
