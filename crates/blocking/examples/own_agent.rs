//! The client on your own `ureq::Agent` (proxy, certificates, user agent):
//! `cargo run -p novita-ureq --example own_agent`.

mod common;

use novita_ureq::ChatRequest;

fn main() -> Result<(), novita_ureq::Error> {
    let (builder, _mock) = common::target();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .user_agent("my-app/1.0")
        .build()
        .into();
    let client = builder.agent(agent).build()?;
    let answer = client.chat(&ChatRequest::new(common::MODEL, "Hello"))?;
    println!("{} ({})", answer.text(), answer.report);
    Ok(())
}
