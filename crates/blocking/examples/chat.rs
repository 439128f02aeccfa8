//! One chat completion, and what the call took: `cargo run -p novita-ureq --example chat`.

mod common;

use novita_ureq::ChatRequest;

fn main() -> Result<(), novita_ureq::Error> {
    let (builder, _mock) = common::target();
    let client = builder.build()?;
    let answer = client.chat(&ChatRequest::new(common::MODEL, "Say hello in French."))?;
    println!("{}", answer.text());
    if let Some(reasoning) = answer.reasoning() {
        println!("(reasoning: {reasoning})");
    }
    // Attempts, waits, fallback and the switch to streaming, in one line.
    println!("({})", answer.report);
    Ok(())
}
