//! `sansmqtt sub`: subscribe to filters and print every message, until `-C` messages arrived,
//! `-W` expired, or the connection ends.

use std::io::{self, Write as _};
use std::time::Instant;

use sansmqtt_tokio::{ClientError, MqttClient};

use crate::args::SubArgs;
use crate::connect::{Connection, lost_cause};
use crate::error::{CliError, Stage};
use crate::format::Format;

/// Runs `sansmqtt sub`.
pub(crate) async fn run(args: SubArgs) -> Result<(), CliError> {
    let conn = Connection::from_args(&args.conn)?;
    for filter in &args.topics {
        sansmqtt_tokio::proto::topic::validate_topic_filter(filter).map_err(|source| {
            CliError::InvalidTopic {
                topic: filter.clone(),
                source,
            }
        })?;
    }
    let format = Format::parse(&args.format, args.verbose)?;
    let deadline = args.timeout.map(|timeout| Instant::now() + timeout);

    let mut conn = conn;
    if args.manual_ack {
        conn.config.manual_acks = true;
    }
    let client = conn.client(args.conn.client_id.as_deref());
    let mut events = client.connection_events();
    conn.connect(&client).await?;
    // Ctrl-C ends a subscription normally: DISCONNECT (so no will is published), status 0.
    let outcome = tokio::select! {
        outcome = receive(&client, &args, &format, deadline) => outcome,
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
            source: lost_cause(&mut events, source),
        },
        other => other,
    });
    let disconnected = client
        .disconnect()
        .await
        .map_err(|err| CliError::client("disconnecting", Stage::Connected, err));
    outcome.and(disconnected)
}

async fn receive(
    client: &MqttClient,
    args: &SubArgs,
    format: &Format,
    deadline: Option<Instant>,
) -> Result<(), CliError> {
    let filters = args.topics.iter().map(|t| (t.as_str(), args.qos));
    let codes = client
        .subscribe(filters)
        .await
        .map_err(|err| CliError::client("subscribing", Stage::Connected, err))?;
    for (filter, code) in args.topics.iter().zip(codes) {
        if !code.is_success() {
            return Err(CliError::SubscribeRefused {
                filter: filter.clone(),
                code,
            });
        }
    }
    // Scripts (and the tests) wait for this line under -d before publishing.
    tracing::debug!(filters = ?args.topics, "subscriptions granted");

    let end: &[u8] = if args.no_newline { b"" } else { b"\n" };
    let stdout = io::stdout();
    let mut received = 0u64;
    while args.count.is_none_or(|count| received < count) {
        let delivery = client.deliver_message();
        let message = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match delivery.timeout(left).await {
                    Err(ClientError::Timeout) => {
                        return Err(CliError::SubTimeout(
                            args.timeout.unwrap_or_default(),
                            received,
                        ));
                    }
                    other => other,
                }
            }
            None => delivery.await,
        }
        .map_err(|err| CliError::client("receiving", Stage::Connected, err))?;
        if args.no_retained && message.retain() {
            // Skipped on purpose: handled as far as the broker is concerned.
            client.ack(&message);
            continue;
        }
        let mut out = stdout.lock();
        let written = format
            .write(&mut out, &message, end)
            .and_then(|()| out.flush());
        match written {
            // --manual-ack: the broker hears of it only once it is on stdout, so a message
            // lost to a crash before that is sent again (QoS 1/2, persistent session).
            Ok(()) => client.ack(&message),
            // The reader went away (`| head -1`): done, not an error.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => return Err(CliError::Output(err)),
        }
        received += 1;
    }
    Ok(())
}
