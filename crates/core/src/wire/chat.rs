//! What a chat-completion request says: the conversation, the sampling parameters Novita
//! documents, tools, structured output, and anything else verbatim.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::labels::Role;

/// One message of a conversation, from any role; the assistant's answer in a
/// [`ChatCompletion`](super::ChatCompletion) is one too, so it can go straight back into
/// the next request.
///
/// ```
/// # use novita_core::wire::{Message, Role};
/// let question = Message::user("What is the weather in Paris?");
/// assert_eq!(question.role, Role::User);
/// assert_eq!(question.text(), "What is the weather in Paris?");
/// let result = Message::tool("call_1", r#"{"celsius": 21}"#);
/// assert_eq!(result.tool_call_id.as_deref(), Some("call_1"));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text or parts (text, images, …); `None` for an assistant message that only calls
    /// tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// A name telling participants of the same role apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tools an assistant message calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A reasoning model's thinking before its answer (DeepSeek R1 and others on Novita).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The model's refusal, instead of content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message from `role` with `content`.
    #[must_use]
    pub fn new(role: Role, content: impl Into<Content>) -> Self {
        Self {
            role,
            content: Some(content.into()),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning_content: None,
            refusal: None,
            extra: Map::new(),
        }
    }

    /// A system prompt.
    #[must_use]
    pub fn system(content: impl Into<Content>) -> Self {
        Self::new(Role::System, content)
    }

    /// A message from the user: text, or parts such as an image and a question.
    #[must_use]
    pub fn user(content: impl Into<Content>) -> Self {
        Self::new(Role::User, content)
    }

    /// An earlier answer of the assistant.
    #[must_use]
    pub fn assistant(content: impl Into<Content>) -> Self {
        Self::new(Role::Assistant, content)
    }

    /// An assistant message that calls tools and says nothing.
    #[must_use]
    pub fn assistant_tool_calls(calls: Vec<ToolCall>) -> Self {
        Self {
            content: None,
            tool_calls: calls,
            ..Self::new(Role::Assistant, "")
        }
    }

    /// The result of the tool call `call_id`.
    #[must_use]
    pub fn tool(call_id: impl Into<String>, result: impl Into<Content>) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            ..Self::new(Role::Tool, result)
        }
    }

    /// This message with a participant name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The text of the content: the string, or the text parts joined; empty when there is
    /// none.
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        self.content
            .as_ref()
            .map_or(Cow::Borrowed(""), Content::text)
    }
}

/// A message's content: plain text, or a list of parts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts: text, images and other media.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text: the string, or the text parts joined.
    #[must_use]
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Text(text) => Cow::Borrowed(text),
            Content::Parts(parts) => match parts.as_slice() {
                [one] => Cow::Borrowed(one.text.as_deref().unwrap_or("")),
                parts => Cow::Owned(
                    parts
                        .iter()
                        .filter_map(|part| part.text.as_deref())
                        .collect(),
                ),
            },
        }
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Content::Text(text)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Text(text.to_owned())
    }
}

impl From<&String> for Content {
    fn from(text: &String) -> Self {
        Content::Text(text.clone())
    }
}

impl From<Vec<ContentPart>> for Content {
    fn from(parts: Vec<ContentPart>) -> Self {
        Content::Parts(parts)
    }
}

/// One part of a message's content. Text and image parts have constructors; other kinds
/// Novita accepts (`video_url`, `input_audio`) go in `extra` beside their `type`.
///
/// ```
/// # use novita_core::wire::{ContentPart, Message};
/// let message = Message::user(vec![
///     ContentPart::image_url("https://example.com/cat.png"),
///     ContentPart::text("What animal is this?"),
/// ]);
/// assert_eq!(message.text(), "What animal is this?");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContentPart {
    /// `text`, `image_url`, `video_url`, `input_audio`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The image of an `image_url` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContentPart {
    /// A text part.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "text".to_owned(),
            text: Some(text.into()),
            image_url: None,
            extra: Map::new(),
        }
    }

    /// An image, by URL or as a `data:` URL.
    #[must_use]
    pub fn image_url(url: impl Into<String>) -> Self {
        Self {
            kind: "image_url".to_owned(),
            text: None,
            image_url: Some(ImageUrl {
                url: url.into(),
                detail: None,
                extra: Map::new(),
            }),
            extra: Map::new(),
        }
    }
}

/// Where an image part's image is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageUrl {
    /// An `https://` or `data:` URL.
    pub url: String,
    /// `low`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    /// A function tool whose arguments follow the JSON Schema `parameters`.
    ///
    /// ```
    /// # use novita_core::wire::Tool;
    /// let weather = Tool::function(
    ///     "get_weather",
    ///     "The current weather in a city",
    ///     serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    /// );
    /// assert_eq!(weather.function.name, "get_weather");
    /// ```
    #[must_use]
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self::new(
            FunctionDefinition::new(name)
                .with_description(description)
                .with_parameters(parameters),
        )
    }

    /// A function tool from a definition built step by step (or read from a file).
    ///
    /// ```
    /// # use novita_core::wire::{FunctionDefinition, Tool};
    /// let now = Tool::new(FunctionDefinition::new("current_time").with_strict(true));
    /// assert_eq!(now.function.description, None);
    /// ```
    #[must_use]
    pub fn new(function: FunctionDefinition) -> Self {
        Self {
            kind: "function".to_owned(),
            function,
            extra: Map::new(),
        }
    }
}

impl From<FunctionDefinition> for Tool {
    fn from(function: FunctionDefinition) -> Self {
        Self::new(function)
    }
}

/// A function's name, purpose and argument schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionDefinition {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Whether the arguments must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FunctionDefinition {
    /// A function called `name`, with no description, schema or strictness yet.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            parameters: None,
            strict: None,
            extra: Map::new(),
        }
    }

    /// This definition with what the function does, for the model.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// This definition with a JSON Schema of its arguments.
    #[must_use]
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = Some(parameters);
        self
    }

    /// This definition asking the model to follow the schema exactly (or not).
    #[must_use]
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// Call no tool (`"none"`).
    None,
    /// The model decides (`"auto"`).
    Auto,
    /// Call at least one tool (`"required"`).
    Required,
    /// Call this function.
    Function(String),
    /// A form this version does not know, sent verbatim.
    Other(Value),
}

/// Reads the command-line form: `none`, `auto`, `required`, or a function's name.
impl std::str::FromStr for ToolChoice {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            name => ToolChoice::Function(name.to_owned()),
        })
    }
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Function(name) => {
                json!({ "type": "function", "function": { "name": name } }).serialize(serializer)
            }
            ToolChoice::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(match value.as_str() {
            Some("none") => ToolChoice::None,
            Some("auto") => ToolChoice::Auto,
            Some("required") => ToolChoice::Required,
            _ => {
                let named = value
                    .get("function")
                    .and_then(|function| function.get("name"))
                    .and_then(Value::as_str)
                    .filter(|_| value.get("type").and_then(Value::as_str) == Some("function"));
                match named {
                    Some(name) if value.as_object().is_some_and(|o| o.len() == 2) => {
                        ToolChoice::Function(name.to_owned())
                    }
                    _ => ToolChoice::Other(value),
                }
            }
        })
    }
}

/// The form the answer must take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any valid JSON object.
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchema,
    },
}

impl ResponseFormat {
    /// Structured output following `schema`, called `name`, strictly.
    #[must_use]
    pub fn json_schema(name: impl Into<String>, schema: Value) -> Self {
        ResponseFormat::JsonSchema {
            json_schema: JsonSchema {
                name: name.into(),
                description: None,
                schema: Some(schema),
                strict: Some(true),
                extra: Map::new(),
            },
        }
    }
}

/// A named JSON Schema for structured output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JsonSchema {
    /// The schema's name.
    pub name: String,
    /// What the answer is, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Whether the answer must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where generation stops: one sequence or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// One sequence.
    One(String),
    /// Several (up to 4 in the OpenAI API).
    Many(Vec<String>),
}

impl From<&str> for StopSequences {
    fn from(stop: &str) -> Self {
        StopSequences::One(stop.to_owned())
    }
}

impl From<Vec<String>> for StopSequences {
    fn from(stops: Vec<String>) -> Self {
        StopSequences::Many(stops)
    }
}

/// Options of a streamed answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Send token counts in a final chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A chat-completion request: every parameter of Novita's chat API, each sent only when set,
/// and anything else through [`param`](Self::param).
///
/// ```
/// # use novita_core::wire::{ChatRequest, Message, Tool, ToolChoice};
/// let request = ChatRequest::new("deepseek/deepseek-v3", "Weather in Paris?")
///     .max_tokens(256)
///     .temperature(0.2)
///     .tool(Tool::function("get_weather", "Current weather", serde_json::json!({"type": "object"})))
///     .tool_choice(ToolChoice::Auto)
///     .param("top_k", 40);
/// let json = serde_json::to_value(&request).unwrap();
/// assert_eq!(json["tools"][0]["function"]["name"], "get_weather");
/// assert_eq!(json["top_k"], 40);
/// assert!(json.get("seed").is_none(), "unset parameters are not sent");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The model to ask; with fallback models configured, the first choice.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The most tokens to generate, reasoning included (newer name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: the probability mass to sample from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sample from the `top_k` likeliest tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// The least probability, relative to the likeliest token, a token needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f64>,
    /// Penalty on tokens by how often they appeared, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Penalty on tokens that appeared at all, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Multiplicative penalty on repeated tokens (1 is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f64>,
    /// How many choices to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// A seed for (best-effort) reproducible sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Where to stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Bias per token id, -100 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, f64>>,
    /// Return the log probability of each generated token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// With `logprobs`: also the likeliest alternatives at each position, 0 to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Text, any JSON object, or JSON following a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Whether to stream; the adapters set this themselves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Options of a streamed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Novita: return a reasoning model's thinking in `reasoning_content` rather than in
    /// the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separate_reasoning: Option<bool>,
    /// Novita: switch thinking on or off for models that can do both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_thinking: Option<bool>,
    /// An id of the end user, for abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Any other parameter, sent verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request for `model` with one user message.
    #[must_use]
    pub fn new(model: impl Into<String>, prompt: impl Into<Content>) -> Self {
        Self::conversation(model, vec![Message::user(prompt)])
    }

    /// A request for `model` continuing `messages`.
    #[must_use]
    pub fn conversation(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            max_tokens: None,
            max_completion_tokens: None,
            temperature: None,
            top_p: None,
            top_k: None,
            min_p: None,
            frequency_penalty: None,
            presence_penalty: None,
            repetition_penalty: None,
            n: None,
            seed: None,
            stop: None,
            logit_bias: None,
            logprobs: None,
            top_logprobs: None,
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            response_format: None,
            stream: false,
            stream_options: None,
            separate_reasoning: None,
            enable_thinking: None,
            user: None,
            extra: Map::new(),
        }
    }

    /// Appends a message.
    #[must_use]
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Caps the tokens generated.
    #[must_use]
    pub fn max_tokens(mut self, tokens: u32) -> Self {
        self.max_tokens = Some(tokens);
        self
    }

    /// Sets the sampling temperature.
    #[must_use]
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets nucleus sampling.
    #[must_use]
    pub fn top_p(mut self, top_p: f64) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Asks for `n` choices.
    #[must_use]
    pub fn n(mut self, n: u32) -> Self {
        self.n = Some(n);
        self
    }

    /// Sets the sampling seed.
    #[must_use]
    pub fn seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Stops generation at `stop`.
    #[must_use]
    pub fn stop(mut self, stop: impl Into<StopSequences>) -> Self {
        self.stop = Some(stop.into());
        self
    }

    /// Asks for each token's log probability and the `top` likeliest alternatives.
    #[must_use]
    pub fn logprobs(mut self, top: u32) -> Self {
        self.logprobs = Some(true);
        self.top_logprobs = Some(top);
        self
    }

    /// Offers a tool to the model.
    #[must_use]
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }

    /// Offers tools to the model.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Says whether and which tool to call.
    #[must_use]
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Asks for an answer of this form.
    #[must_use]
    pub fn response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Asks a streamed answer to end with its token counts.
    #[must_use]
    pub fn include_usage(mut self) -> Self {
        self.stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
        self
    }

    /// Sets any other parameter, sent verbatim (`top_k`, `min_p`, a parameter newer than
    /// this version, …); a known field set this way replaces the typed one on the wire.
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// A tool call the model made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The id the tool's result must quote (`tool_call_id`).
    #[serde(default)]
    pub id: String,
    /// `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_kind() -> String {
    "function".to_owned()
}

impl ToolCall {
    /// A call of function `name` with `arguments` (a JSON text).
    #[must_use]
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
                extra: Map::new(),
            },
            extra: Map::new(),
        }
    }
}

/// The function a tool call names and the arguments the model wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionCall {
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The arguments as the model wrote them: JSON text, which may not be valid JSON.
    #[serde(default)]
    pub arguments: String,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FunctionCall {
    /// The arguments read as `T`.
    ///
    /// # Errors
    /// The model wrote arguments that are not JSON, or not a `T`.
    pub fn parse_arguments<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.arguments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_choices_read_their_command_line_form() {
        let parse = |text: &str| text.parse::<ToolChoice>().unwrap();
        assert_eq!(parse("auto"), ToolChoice::Auto);
        assert_eq!(parse("none"), ToolChoice::None);
        assert_eq!(parse("required"), ToolChoice::Required);
        assert_eq!(
            parse("get_weather"),
            ToolChoice::Function("get_weather".into())
        );
        let tool: Tool = FunctionDefinition::new("f").with_description("d").into();
        assert_eq!(
            serde_json::to_value(tool).unwrap(),
            json!({"type": "function", "function": {"name": "f", "description": "d"}})
        );
    }
    use crate::wire::ToolCall;

    #[test]
    fn every_role_serialises_as_the_api_expects() {
        let call = ToolCall::function("call_1", "get_weather", r#"{"city":"Paris"}"#);
        let messages = vec![
            Message::system("be brief"),
            Message::user(vec![
                ContentPart::text("what is this?"),
                ContentPart::image_url("data:image/png;base64,AAAA"),
            ]),
            Message::assistant_tool_calls(vec![call]),
            Message::tool("call_1", "21 C"),
        ];
        let json = serde_json::to_value(&messages).unwrap();
        assert_eq!(
            json,
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ]},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "content": "21 C", "tool_call_id": "call_1"},
            ])
        );
        let back: Vec<Message> = serde_json::from_value(json).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn parameters_are_sent_only_when_set() {
        let bare = serde_json::to_value(ChatRequest::new("m", "hi")).unwrap();
        assert_eq!(
            bare,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        );
        let full = ChatRequest::new("m", "hi")
            .max_tokens(16)
            .n(2)
            .seed(-7)
            .stop("END")
            .logprobs(3)
            .include_usage()
            .response_format(ResponseFormat::json_schema(
                "answer",
                json!({"type": "object"}),
            ))
            .tool_choice(ToolChoice::Function("f".to_owned()))
            .param("top_k", 40);
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["max_tokens"], 16);
        assert_eq!(json["n"], 2);
        assert_eq!(json["seed"], -7);
        assert_eq!(json["stop"], "END");
        assert_eq!(json["logprobs"], true);
        assert_eq!(json["top_logprobs"], 3);
        assert_eq!(json["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            json["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(
            json["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(json["top_k"], 40);
        let back: ChatRequest = serde_json::from_value(json).unwrap();
        assert_eq!(
            back.top_k,
            Some(40),
            "a typed field set by param reads back typed"
        );
        assert_eq!(back.tool_choice, full.tool_choice);
        assert_eq!(back.response_format, full.response_format);
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let json = json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "video_url", "video_url": {"url": "https://v"}},
                {"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}},
            ], "x-note": 1}],
            "tools": [{"type": "function", "function": {"name": "f", "x": true}, "y": 2}],
            "tool_choice": {"type": "allowed_tools", "tools": []},
            "brand_new": [1, 2],
        });
        let request: ChatRequest = serde_json::from_value(json.clone()).unwrap();
        assert!(matches!(request.tool_choice, Some(ToolChoice::Other(_))));
        assert_eq!(serde_json::to_value(&request).unwrap(), json);
    }

    #[test]
    fn content_text_joins_parts() {
        let parts = Content::Parts(vec![ContentPart::text("a"), ContentPart::text("b")]);
        assert_eq!(parts.text(), "ab");
        assert_eq!(Message::assistant_tool_calls(Vec::new()).text(), "");
        let error = serde_json::from_value::<ToolChoice>(json!(null)).unwrap();
        assert_eq!(error, ToolChoice::Other(Value::Null));
    }
}
