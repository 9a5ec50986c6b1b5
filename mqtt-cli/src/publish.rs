//! `sansmqtt pub`: one message (from `-m`, `-f`, `-n` or all of stdin with `-s`), repeated
//! `--repeat` times, or one message per stdin line with `-l`.

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use sansmqtt_tokio::{
    MqttClient, ProtocolVersion, PublishFuture, PublishProperties, QoS, UserProperty,
};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tracing::debug;

use crate::args::PubArgs;
use crate::connect::Connection;
use crate::error::{CliError, Stage};

/// Publishes awaited at once: QoS 1/2 messages from `-l` are pipelined, not sent one round
/// trip at a time; the client's own in-flight window still applies on the wire.
const PIPELINE: usize = 256;

/// Runs `sansmqtt pub`.
pub(crate) async fn run(args: PubArgs) -> Result<(), CliError> {
    let conn = Connection::from_args(&args.conn)?;
    sansmqtt_tokio::proto::topic::validate_topic_name(&args.topic).map_err(|source| {
        CliError::InvalidTopic {
            topic: args.topic.clone(),
            source,
        }
    })?;
    let properties = properties(&args, conn.config.protocol_version)?;
    // The payload is read before connecting: a missing file is a usage problem, not a
    // reason to open and drop a connection.
    let payload = if args.source.lines {
        None
    } else {
        Some(single_payload(&args).await?)
    };

    let client = conn.client(args.conn.client_id.as_deref());
    let mut events = client.connection_events();
    conn.connect(&client).await?;
    let publisher = Publisher {
        client: &client,
        topic: &args.topic,
        qos: args.qos,
        retain: args.retain,
        properties,
        pending: FuturesOrdered::new(),
    };
    let publishing = async {
        match payload {
            Some(payload) => publisher.repeat(payload, args.repeat, args.interval).await,
            None => publisher.lines().await,
        }
    };
    // Ctrl-C (`tail -f log | sansmqtt pub -l`) ends publishing normally: DISCONNECT, status 0.
    let outcome = tokio::select! {
        outcome = publishing => outcome,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    let outcome = outcome.map_err(|err| match err {
        CliError::Client {
            action,
            stage,
            source,
        } => CliError::Client {
            action,
            stage,
            source: crate::connect::lost_cause(&mut events, source),
        },
        other => other,
    });
    // Disconnect in every case: a failed publish leaves the connection usable.
    let disconnected = client
        .disconnect()
        .await
        .map_err(|err| CliError::client("disconnecting", Stage::Connected, err));
    outcome.and(disconnected)
}

/// The MQTT 5 properties the options ask for.
fn properties(args: &PubArgs, version: ProtocolVersion) -> Result<PublishProperties, CliError> {
    let mut properties = PublishProperties::default();
    for pair in args.user_property.chunks(2) {
        if let [name, value] = pair {
            properties
                .user_properties
                .push(UserProperty::new(name.as_str(), value.as_str()));
        }
    }
    properties.message_expiry_interval = args.message_expiry;
    properties.content_type = args.content_type.as_deref().map(Into::into);
    if let Some(topic) = &args.response_topic {
        sansmqtt_tokio::proto::topic::validate_topic_name(topic).map_err(|source| {
            CliError::InvalidTopic {
                topic: topic.clone(),
                source,
            }
        })?;
        properties.response_topic = Some(topic.as_str().into());
    }
    properties.correlation_data = args
        .correlation_data
        .as_ref()
        .map(|data| Bytes::from(data.clone().into_bytes()));
    if version != ProtocolVersion::V5 && !properties.is_empty() {
        let option = if !properties.user_properties.is_empty() {
            "--user-property"
        } else if properties.message_expiry_interval.is_some() {
            "--message-expiry"
        } else if properties.content_type.is_some() {
            "--content-type"
        } else if properties.response_topic.is_some() {
            "--response-topic"
        } else {
            "--correlation-data"
        };
        return Err(CliError::NeedsV5 { option });
    }
    Ok(properties)
}

/// The payload of `-m`, `-f`, `-n` or `-s`.
async fn single_payload(args: &PubArgs) -> Result<Bytes, CliError> {
    let source = &args.source;
    if let Some(message) = &source.message {
        return Ok(Bytes::from(message.clone().into_bytes()));
    }
    if let Some(path) = &source.file {
        // Read before connecting, on this thread: nothing else runs yet.
        return std::fs::read(path)
            .map(Bytes::from)
            .map_err(|err| CliError::Input {
                what: path.display().to_string(),
                source: err,
            });
    }
    if source.stdin {
        let mut data = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut data)
            .await
            .map_err(|err| CliError::Input {
                what: "standard input".into(),
                source: err,
            })?;
        return Ok(Bytes::from(data));
    }
    // `-n`: clap's group guarantees exactly one source.
    Ok(Bytes::new())
}

struct Publisher<'a> {
    client: &'a MqttClient,
    topic: &'a str,
    qos: Option<QoS>,
    retain: bool,
    properties: PublishProperties,
    pending: FuturesOrdered<PublishFuture>,
}

impl Publisher<'_> {
    /// Hands one message to the client; waits for the oldest ones while too many are pending.
    async fn send(&mut self, payload: Bytes) -> Result<(), CliError> {
        let mut publish = self
            .client
            .publish(self.topic, payload)
            .properties(self.properties.clone());
        // Unset, the configuration's defaults apply (default_qos, default_retain, topics).
        if let Some(qos) = self.qos {
            publish = publish.qos(qos);
        }
        if self.retain {
            publish = publish.retain(true);
        }
        self.pending.push_back(publish.start());
        while self.pending.len() >= PIPELINE {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<(), CliError> {
        match self.pending.next().await {
            Some(Ok(code)) => {
                debug!(%code, "published");
                Ok(())
            }
            Some(Err(err)) => Err(CliError::client("publishing", Stage::Connected, err)),
            None => Ok(()),
        }
    }

    async fn settle_all(&mut self) -> Result<(), CliError> {
        while !self.pending.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn repeat(
        mut self,
        payload: Bytes,
        times: u64,
        interval: std::time::Duration,
    ) -> Result<(), CliError> {
        for i in 0..times {
            if i > 0 && !interval.is_zero() {
                // A pause between repeats means each one is complete before the next.
                self.settle_all().await?;
                tokio::time::sleep(interval).await;
            }
            self.send(payload.clone()).await?;
        }
        self.settle_all().await
    }

    /// `-l`: a message per line of stdin, without the line ending, until end of input.
    async fn lines(mut self) -> Result<(), CliError> {
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = stdin
                .read_until(b'\n', &mut line)
                .await
                .map_err(|err| CliError::Input {
                    what: "standard input".into(),
                    source: err,
                })?;
            if read == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            self.send(Bytes::copy_from_slice(&line)).await?;
        }
        self.settle_all().await
    }
}
