//! How `sansmqtt sub` prints a message: plain, JSON lines, or a `%`-template.

use std::borrow::Cow;
use std::io::{self, Write};

use base64::Engine as _;
use sansmqtt_tokio::ApplicationMessage;
use serde::Serialize;

use crate::error::{CliError, OptionError};

/// An output format, parsed once from `-F`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Format {
    /// The payload; with `verbose`, the topic and a space first.
    Plain {
        /// `-v`.
        verbose: bool,
    },
    /// One JSON object per message.
    Json,
    /// A template.
    Template(Vec<Piece>),
}

/// A part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Text copied as is.
    Text(String),
    /// `%t`.
    Topic,
    /// `%p`.
    Payload,
    /// `%x`.
    PayloadHex,
    /// `%q`.
    Qos,
    /// `%r`.
    Retain,
    /// `%l`.
    Length,
}

impl Format {
    /// Parses `-F`: `plain`, `json` or a template.
    pub(crate) fn parse(spec: &str, verbose: bool) -> Result<Self, CliError> {
        match spec {
            "plain" => Ok(Self::Plain { verbose }),
            "json" => Ok(Self::Json),
            template => Ok(Self::Template(parse_template(template)?)),
        }
    }

    /// Writes `message` (and `end`, a newline unless `-N`).
    pub(crate) fn write(
        &self,
        out: &mut impl Write,
        message: &ApplicationMessage,
        end: &[u8],
    ) -> io::Result<()> {
        match self {
            Self::Plain { verbose } => {
                if *verbose {
                    out.write_all(message.topic().as_bytes())?;
                    out.write_all(b" ")?;
                }
                out.write_all(message.payload())?;
            }
            Self::Json => serde_json::to_writer(&mut *out, &JsonMessage::new(message))?,
            Self::Template(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.write_all(text.as_bytes())?,
                        Piece::Topic => out.write_all(message.topic().as_bytes())?,
                        Piece::Payload => out.write_all(message.payload())?,
                        Piece::PayloadHex => {
                            for byte in message.payload().iter() {
                                write!(out, "{byte:02x}")?;
                            }
                        }
                        Piece::Qos => write!(out, "{}", message.qos() as u8)?,
                        Piece::Retain => write!(out, "{}", u8::from(message.retain()))?,
                        Piece::Length => write!(out, "{}", message.payload().len())?,
                    }
                }
            }
        }
        out.write_all(end)
    }
}

fn parse_template(template: &str) -> Result<Vec<Piece>, CliError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        let piece = match c {
            '%' => match chars.next() {
                Some('t') => Piece::Topic,
                Some('p') => Piece::Payload,
                Some('x') => Piece::PayloadHex,
                Some('q') => Piece::Qos,
                Some('r') => Piece::Retain,
                Some('l') => Piece::Length,
                Some('%') => {
                    text.push('%');
                    continue;
                }
                other => {
                    return Err(OptionError::TemplatePlaceholder(
                        other.map_or_else(|| "%".to_owned(), |c| format!("%{c}")),
                    )
                    .into());
                }
            },
            '\\' => {
                match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('t') => text.push('\t'),
                    Some('\\') => text.push('\\'),
                    Some(other) => {
                        text.push('\\');
                        text.push(other);
                    }
                    None => text.push('\\'),
                }
                continue;
            }
            other => {
                text.push(other);
                continue;
            }
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(piece);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Bytes as a JSON string: the text when it is UTF-8, base64 otherwise.
fn text_or_base64(bytes: &[u8]) -> (Cow<'_, str>, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), "utf-8"),
        Err(_) => (
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
            "base64",
        ),
    }
}

/// One line of `-F json`.
#[derive(Debug, Serialize)]
struct JsonMessage<'a> {
    topic: &'a str,
    qos: u8,
    retain: bool,
    properties: JsonProperties<'a>,
    payload: Cow<'a, str>,
    /// `utf-8` or `base64`.
    payload_encoding: &'static str,
}

/// The MQTT 5 properties of a message; absent ones are left out.
#[derive(Debug, Serialize)]
struct JsonProperties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data_encoding: Option<&'static str>,
    /// Name/value pairs, in order (duplicates are allowed, so not an object).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    user_properties: Vec<(&'a str, &'a str)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscription_identifiers: Vec<u32>,
}

impl<'a> JsonMessage<'a> {
    fn new(message: &'a ApplicationMessage) -> Self {
        let props = message.properties();
        let (payload, payload_encoding) = text_or_base64(message.payload());
        let correlation = props.correlation_data.as_deref().map(text_or_base64);
        Self {
            topic: message.topic(),
            qos: message.qos() as u8,
            retain: message.retain(),
            properties: JsonProperties {
                payload_format_indicator: props.payload_format_indicator.map(|f| f as u8),
                message_expiry_interval: props.message_expiry_interval,
                content_type: props.content_type.as_deref(),
                response_topic: props.response_topic.as_deref(),
                correlation_data_encoding: correlation.as_ref().map(|(_, enc)| *enc),
                correlation_data: correlation.map(|(data, _)| data),
                user_properties: props
                    .user_properties
                    .iter()
                    .map(|p| (&*p.name, &*p.value))
                    .collect(),
                subscription_identifiers: props
                    .subscription_identifiers
                    .iter()
                    .map(|id| id.get())
                    .collect(),
            },
            payload,
            payload_encoding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_know_mosquitto_placeholders_and_escapes() {
        assert_eq!(
            parse_template("%t\\t%p 100%%").expect("valid"),
            vec![
                Piece::Topic,
                Piece::Text("\t".into()),
                Piece::Payload,
                Piece::Text(" 100%".into()),
            ]
        );
        assert!(parse_template("%z").is_err());
        assert!(parse_template("50%").is_err());
    }

    #[test]
    fn binary_is_base64_and_text_stays_text() {
        assert_eq!(text_or_base64(b"hi"), (Cow::Borrowed("hi"), "utf-8"));
        assert_eq!(
            text_or_base64(&[0xff, 0x00]),
            (Cow::Owned("/wA=".to_owned()), "base64")
        );
    }
}
