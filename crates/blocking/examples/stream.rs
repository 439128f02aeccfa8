//! A streamed answer printed as it arrives: `cargo run -p novita-ureq --example stream`.

mod common;

use std::io::Write as _;

use novita_ureq::ChatRequest;

fn main() -> Result<(), novita_ureq::Error> {
    let (builder, _mock) = common::target();
    let client = builder.build()?;
    let request = ChatRequest::new(common::MODEL, "Count from one to five.");
    // The policy applies until the stream starts; a stream that breaks later yields an
    // error item instead of ending quietly.
    for chunk in client.chat_stream(&request)? {
        print!("{}", chunk?.text());
        let _ = std::io::stdout().flush();
    }
    println!();
    Ok(())
}
