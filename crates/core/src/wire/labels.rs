//! The closed-but-growing string values of the wire format: message roles and finish
//! reasons. Known values get variants; anything else is kept as it came.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a string-valued enum whose unknown values survive in an `Other` variant.
macro_rules! string_label {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $text:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as it goes on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(text) => text,
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(text),
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name::from(text.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(label: $name) -> String {
                match label {
                    $name::Other(text) => text,
                    known => known.as_str().to_owned(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_label! {
    /// Who wrote a message.
    Role {
        /// Instructions that frame the conversation.
        System => "system",
        /// Instructions from the application's developer (newer OpenAI models).
        Developer => "developer",
        /// The person talking to the model.
        User => "user",
        /// The model.
        Assistant => "assistant",
        /// The result of a tool call, answering the call named by `tool_call_id`.
        Tool => "tool",
        /// The result of a legacy function call.
        Function => "function",
    }
}

string_label! {
    /// Why the model stopped generating a choice.
    FinishReason {
        /// A natural end or a stop sequence.
        Stop => "stop",
        /// `max_tokens` or the context length was reached: the answer is cut.
        Length => "length",
        /// The model called tools; run them and send their results back.
        ToolCalls => "tool_calls",
        /// Content was withheld by a filter.
        ContentFilter => "content_filter",
        /// The model called a legacy function.
        FunctionCall => "function_call",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_values_round_trip() {
        for text in ["assistant", "tool", "moderator"] {
            let role: Role = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(role.as_str(), text);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{text}\""));
        }
        assert_eq!(Role::from("tool"), Role::Tool);
        assert_eq!(
            FinishReason::from("eos"),
            FinishReason::Other("eos".to_owned())
        );
        assert_eq!(FinishReason::ToolCalls.to_string(), "tool_calls");
    }
}
