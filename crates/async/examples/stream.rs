//! A streamed answer printed as it arrives: `cargo run -p novita-reqwest --example stream`.

mod common;

use std::io::Write as _;

use novita_reqwest::ChatRequest;

#[tokio::main]
async fn main() -> Result<(), novita_reqwest::Error> {
    let (builder, _mock) = common::target();
    let client = builder.build()?;
    let request = ChatRequest::new(common::MODEL, "Count from one to five.");
    // The policy applies until the stream starts; a stream that breaks later yields an
    // error item instead of ending quietly.
    let mut stream = client.chat_stream(&request).await?;
    while let Some(chunk) = stream.next_chunk().await {
        print!("{}", chunk?.text());
        let _ = std::io::stdout().flush();
    }
    println!();
    Ok(())
}
