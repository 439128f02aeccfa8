//! `novita chat --tools FILE` and `--tool-choice`: the tool definitions a user offers the
//! model, read from a JSON file, and which of them the model must call.

use std::collections::BTreeSet;
use std::path::Path;

use novita_core::wire::{Tool, ToolChoice};
use serde_json::{Value, json};

/// Reads the tools defined in `path`: a JSON array whose entries are OpenAI tool objects
/// (`{"type": "function", "function": {"name": ...}}`) or bare function definitions
/// (`{"name": ..., "description": ..., "parameters": {...}}`), mixed freely.
///
/// # Errors
/// The whole message for the user, naming the file and what is wrong with it: it cannot be
/// read, it is not JSON, or it is not an array of tools.
pub(crate) fn load(path: &Path) -> Result<Vec<Tool>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read tools file {shown}: {error}"))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| format!("tools file {shown} is not JSON: {error}"))?;
    parse(value).map_err(|problem| format!("tools file {shown}: {problem}"))
}

/// The tools of a parsed file; the error says what is wrong, without naming the file.
fn parse(value: Value) -> Result<Vec<Tool>, String> {
    let Value::Array(entries) = value else {
        return Err(format!(
            "expected a JSON array of tools, found {}",
            kind(&value)
        ));
    };
    let mut names = BTreeSet::new();
    let mut tools = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let tool = parse_entry(entry).map_err(|problem| format!("tools[{index}] {problem}"))?;
        if tool.function.name.is_empty() {
            return Err(format!("tools[{index}] has an empty function name"));
        }
        if !names.insert(tool.function.name.clone()) {
            return Err(format!(
                "tools[{index}] defines `{}` a second time",
                tool.function.name
            ));
        }
        tools.push(tool);
    }
    Ok(tools)
}

/// One entry: an OpenAI tool object when it has `type` or `function`, else a bare function
/// definition.
fn parse_entry(entry: Value) -> Result<Tool, String> {
    let Value::Object(fields) = &entry else {
        return Err(format!("is {}, not an object", kind(&entry)));
    };
    if fields.contains_key("type") || fields.contains_key("function") {
        serde_json::from_value(entry).map_err(|error| {
            format!(
                "is not an OpenAI tool ({{\"type\": \"function\", \"function\": {{\"name\": ...}}}}): {error}"
            )
        })
    } else {
        // `Tool` has no constructor from a `FunctionDefinition`, so the bare definition
        // is wrapped as JSON and read as a tool.
        serde_json::from_value(json!({ "type": "function", "function": entry })).map_err(|error| {
            format!(
                "is not a function definition ({{\"name\": ..., \"parameters\": {{...}}}}): {error}"
            )
        })
    }
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `--tool-choice`: `auto`, `none`, `required`, or the name of a function to call.
pub(crate) fn parse_choice(choice: &str) -> Result<ToolChoice, String> {
    match choice {
        "auto" => Ok(ToolChoice::Auto),
        "none" => Ok(ToolChoice::None),
        "required" => Ok(ToolChoice::Required),
        "" => Err("expected auto, none, required or a function name".to_owned()),
        name if name.chars().any(char::is_whitespace) => Err(format!(
            "{name:?} is not a function name; expected auto, none, required or a function name"
        )),
        name => Ok(ToolChoice::Function(name.to_owned())),
    }
}

/// Checks that a `--tool-choice` naming a function names one of `tools`.
///
/// # Errors
/// The message for the user, listing the functions the file defines.
pub(crate) fn check_choice(choice: &ToolChoice, tools: &[Tool], path: &Path) -> Result<(), String> {
    let ToolChoice::Function(name) = choice else {
        return Ok(());
    };
    if tools.iter().any(|tool| tool.function.name == *name) {
        return Ok(());
    }
    let defined: Vec<&str> = tools
        .iter()
        .map(|tool| tool.function.name.as_str())
        .collect();
    Err(format!(
        "--tool-choice names `{name}`, which tools file {} does not define (it defines: {})",
        path.display(),
        if defined.is_empty() {
            "nothing".to_owned()
        } else {
            defined.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_objects_and_bare_definitions_both_read() {
        let tools = parse(json!([
            {"type": "function", "function": {"name": "get_weather",
             "parameters": {"type": "object"}}},
            {"name": "get_time", "description": "The time in a city"},
        ]))
        .unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.function.name.as_str()).collect();
        assert_eq!(names, ["get_weather", "get_time"]);
        assert_eq!(tools[1].kind, "function");
        assert_eq!(
            tools[1].function.description.as_deref(),
            Some("The time in a city")
        );
        assert_eq!(
            serde_json::to_value(&tools[0]).unwrap(),
            json!({"type": "function", "function": {"name": "get_weather",
                   "parameters": {"type": "object"}}})
        );
    }

    #[test]
    fn wrong_shapes_say_where() {
        let problem = |value: Value| parse(value).unwrap_err();
        assert_eq!(
            problem(json!({"name": "f"})),
            "expected a JSON array of tools, found an object"
        );
        assert_eq!(problem(json!([1])), "tools[0] is a number, not an object");
        assert!(
            problem(json!([{"name": "f"}, {"description": "no name"}]))
                .starts_with("tools[1] is not a function definition")
        );
        assert!(problem(json!([{"type": "function"}])).contains("missing field `function`"));
        assert_eq!(
            problem(json!([{"name": ""}])),
            "tools[0] has an empty function name"
        );
        assert_eq!(
            problem(json!([{"name": "f"}, {"name": "f"}])),
            "tools[1] defines `f` a second time"
        );
    }

    #[test]
    fn choices_parse_and_must_name_a_tool() {
        assert_eq!(parse_choice("auto"), Ok(ToolChoice::Auto));
        assert_eq!(parse_choice("none"), Ok(ToolChoice::None));
        assert_eq!(parse_choice("required"), Ok(ToolChoice::Required));
        assert_eq!(
            parse_choice("get_weather"),
            Ok(ToolChoice::Function("get_weather".to_owned()))
        );
        assert!(parse_choice("").is_err());
        assert!(parse_choice("get weather").is_err());
        let tools = parse(json!([{"name": "get_weather"}])).unwrap();
        let path = Path::new("tools.json");
        assert!(check_choice(&ToolChoice::Required, &tools, path).is_ok());
        assert!(check_choice(&ToolChoice::Function("get_weather".into()), &tools, path).is_ok());
        assert_eq!(
            check_choice(&ToolChoice::Function("get_time".into()), &tools, path).unwrap_err(),
            "--tool-choice names `get_time`, which tools file tools.json does not define \
             (it defines: get_weather)"
        );
    }
}
