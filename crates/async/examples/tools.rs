//! Offering a tool and reading the model's call: `cargo run -p novita-reqwest --example tools`.

mod common;

use novita_reqwest::{ChatRequest, Message, Tool};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (builder, _mock) = common::target();
    let client = builder.build()?;
    let weather = Tool::function(
        "get_weather",
        "The current weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    );
    let question = Message::user("What is the weather in Paris?");
    let request = ChatRequest::conversation(common::MODEL, vec![question.clone()]).tool(weather);
    let answer = client.chat(&request).await?;
    let Some(call) = answer.tool_calls().first().cloned() else {
        println!("no tool call: {}", answer.text());
        return Ok(());
    };
    let arguments: Value = call.function.parse_arguments()?;
    println!("the model calls {}({arguments})", call.function.name);

    // Answer the call and let the model finish; the assistant's message goes back as is.
    let assistant = answer.choices[0].message.clone();
    let result = Message::tool(&call.id, r#"{"temperature_c": 18, "sky": "clear"}"#);
    let follow_up = ChatRequest::conversation(common::MODEL, vec![question, assistant, result]);
    println!("{}", client.chat(&follow_up).await?.text());
    Ok(())
}
