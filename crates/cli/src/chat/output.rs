//! What `novita chat` prints of an answer, buffered or streamed, so both show the same:
//!
//! - stdout: the text, then a refusal (`refusal: ...`), then one line per tool call,
//!   `tool call ID: NAME(ARGUMENTS)`; an answer with none of these is an empty line. With
//!   `--json`, only the whole completion as one JSON document instead.
//! - stderr, with `--reasoning`: the model's reasoning between `[reasoning]` and
//!   `[end of reasoning]` lines, before the answer (as it arrives when streaming), so the
//!   answer on stdout stays clean for pipes.
//!
//! A write to a closed stdout or stderr (`novita chat ... | head`) is not worth reporting.

use std::io::Write as _;

use novita_core::Error as CallError;
use novita_core::wire::{Assembler, ChatChunk, ChatCompletion, ToolCall};

/// What to show of an answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Show {
    /// The completion as JSON instead of its text and tool calls.
    pub(crate) json: bool,
    /// The model's reasoning, on stderr.
    pub(crate) reasoning: bool,
}

/// The line printed for one tool call: `tool call ID: NAME(ARGUMENTS)`, the arguments as
/// the model wrote them but on one line (`-` stands for a missing id).
///
/// Line breaks in valid JSON arguments can only be whitespace between tokens, so turning
/// them into spaces keeps the JSON and its meaning; `--json` shows them byte for byte.
pub(crate) fn tool_call_line(call: &ToolCall) -> String {
    let id = if call.id.is_empty() { "-" } else { &call.id };
    let arguments = call.function.arguments.replace(['\r', '\n'], " ");
    format!("tool call {id}: {}({arguments})", call.function.name)
}

/// Prints a buffered answer.
pub(crate) fn print_completion(show: Show, completion: &ChatCompletion) {
    if show.reasoning {
        let mut reasoning = Reasoning::default();
        reasoning.write(completion.reasoning().unwrap_or(""));
        reasoning.end();
    }
    let mut stdout = std::io::stdout().lock();
    if show.json {
        print_json(&mut stdout, completion);
    } else {
        print_rest(&mut stdout, completion, false);
    }
}

fn print_json(out: &mut impl std::io::Write, completion: &ChatCompletion) {
    let _ = serde_json::to_writer_pretty(&mut *out, completion);
    let _ = writeln!(out);
    let _ = out.flush();
}

/// Prints what follows the text: the text itself unless it was streamed already, the end
/// of the line a streamed text left open, a refusal, the tool calls.
fn print_rest(out: &mut impl std::io::Write, completion: &ChatCompletion, text_streamed: bool) {
    let text = completion.text();
    if text_streamed || !text.is_empty() {
        let shown = if text_streamed { "" } else { &text };
        let _ = writeln!(out, "{shown}");
    }
    let refusal = completion
        .choices
        .first()
        .and_then(|choice| choice.message.refusal.as_deref())
        .filter(|refusal| !refusal.is_empty());
    if let Some(refusal) = refusal {
        let _ = writeln!(out, "refusal: {}", refusal.replace(['\r', '\n'], " "));
    }
    for call in completion.tool_calls() {
        let _ = writeln!(out, "{}", tool_call_line(call));
    }
    if !text_streamed && text.is_empty() && refusal.is_none() && completion.tool_calls().is_empty()
    {
        // An empty answer is an empty line, as it always was.
        let _ = writeln!(out);
    }
    let _ = out.flush();
}

/// The reasoning block on stderr: opened by the first piece, closed once.
#[derive(Debug, Default)]
struct Reasoning {
    open: bool,
    at_line_start: bool,
    seen: bool,
}

impl Reasoning {
    fn write(&mut self, piece: &str) {
        if piece.is_empty() {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if !self.open {
            let _ = writeln!(stderr, "[reasoning]");
            self.open = true;
            self.seen = true;
        }
        let _ = write!(stderr, "{piece}");
        let _ = stderr.flush();
        self.at_line_start = piece.ends_with('\n');
    }

    /// Closes the block if one is open.
    fn close(&mut self) {
        if !self.open {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if !self.at_line_start {
            let _ = writeln!(stderr);
        }
        let _ = writeln!(stderr, "[end of reasoning]");
        self.open = false;
    }

    /// Closes the block, or says there was none to show.
    fn end(&mut self) {
        self.close();
        if !self.seen {
            eprintln!(
                "novita: note: the answer carries no reasoning (the model does not reason, \
                 or does not return its reasoning separately)"
            );
        }
    }
}

/// Prints a streamed answer as it arrives, for either adapter's stream: text on stdout and
/// (with `--reasoning`) reasoning on stderr piece by piece; tool calls, a refusal, or the
/// JSON document once the stream has ended and they are whole.
pub(crate) struct StreamPrinter {
    show: Show,
    model: String,
    assembler: Assembler,
    chunks: usize,
    reasoning: Reasoning,
    text_streamed: bool,
    stdout: std::io::StdoutLock<'static>,
}

impl StreamPrinter {
    pub(crate) fn new(show: Show, model: &str) -> Self {
        Self {
            show,
            model: model.to_owned(),
            assembler: Assembler::new(),
            chunks: 0,
            reasoning: Reasoning::default(),
            text_streamed: false,
            stdout: std::io::stdout().lock(),
        }
    }

    /// Prints one chunk; a broken stream ends the open lines and hands back its error.
    pub(crate) fn print(&mut self, chunk: Result<ChatChunk, CallError>) -> Result<(), CallError> {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                self.interrupt();
                return Err(error);
            }
        };
        if let Err(error) = self.assembler.push(&chunk) {
            self.interrupt();
            return Err(CallError::Stream {
                model: self.model.clone(),
                chunks: self.chunks,
                problem: error.to_string(),
                source: Some(Box::new(error)),
            });
        }
        self.chunks += 1;
        if self.show.reasoning {
            self.reasoning.write(chunk.reasoning());
        }
        let text = chunk.text();
        if !self.show.json && !text.is_empty() {
            self.reasoning.close();
            let _ = write!(self.stdout, "{text}");
            let _ = self.stdout.flush();
            self.text_streamed = true;
        }
        Ok(())
    }

    fn interrupt(&mut self) {
        self.reasoning.close();
        if self.text_streamed {
            let _ = writeln!(self.stdout);
        }
    }

    /// After the last chunk: ends the text and prints what is only whole now.
    pub(crate) fn finish(mut self) {
        if self.show.reasoning {
            self.reasoning.end();
        }
        let completion = self.assembler.finish();
        if self.show.json {
            print_json(&mut self.stdout, &completion);
        } else {
            print_rest(&mut self.stdout, &completion, self.text_streamed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(message: &serde_json::Value) -> ChatCompletion {
        serde_json::from_value(serde_json::json!({
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]
        }))
        .unwrap()
    }

    fn rest(completion: &ChatCompletion, text_streamed: bool) -> String {
        let mut out = Vec::new();
        print_rest(&mut out, completion, text_streamed);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tool_calls_print_one_line_each() {
        let answer = completion(&serde_json::json!({
            "role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\n  \"city\": \"Paris\"\n}"}},
                {"type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ]
        }));
        assert_eq!(
            rest(&answer, false),
            "tool call call_1: get_weather({   \"city\": \"Paris\" })\ntool call -: get_time({})\n"
        );
    }

    #[test]
    fn text_refusal_and_empty_answers() {
        let text = completion(&serde_json::json!({"role": "assistant", "content": "Hi"}));
        assert_eq!(rest(&text, false), "Hi\n");
        assert_eq!(
            rest(&text, true),
            "\n",
            "a streamed text only needs its line ended"
        );
        let refused = completion(&serde_json::json!({"role": "assistant", "refusal": "No."}));
        assert_eq!(rest(&refused, false), "refusal: No.\n");
        let empty = completion(&serde_json::json!({"role": "assistant", "content": ""}));
        assert_eq!(rest(&empty, false), "\n");
    }
}
