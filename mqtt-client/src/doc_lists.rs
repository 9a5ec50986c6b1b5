//! The `# Errors` lists that several methods share, written once so that they cannot drift
//! apart: each expands to Markdown for a `#[doc = ...]` attribute. Links are written with
//! `crate::` paths so they resolve from any module; variants behind a Cargo feature (`Tls`,
//! `WebSocket`, `Quic`) are named without a link, so the docs build with any features.

/// The error a connection task stopped with, which every call still waiting gets.
macro_rules! ended_errors {
    () => {
        "the error the connection task stopped with, once reconnecting gave up (or at the \
         first loss with `auto_reconnect` off): \
         [`ConnectionLost`](crate::ClientError::ConnectionLost), \
         [`Io`](crate::ClientError::Io), [`Timeout`](crate::ClientError::Timeout), \
         [`Connect`](crate::ClientError::Connect), [`Protocol`](crate::ClientError::Protocol), \
         [`Auth`](crate::ClientError::Auth), [`Store`](crate::ClientError::Store), \
         [`Proxy`](crate::ClientError::Proxy), `Tls`, `WebSocket` or `Quic`."
    };
}

/// What `connect` (and, but for the first two, `reconnect`) fails with.
macro_rules! connect_errors {
    () => {
        concat!(
            "- [`InvalidConfig`](crate::ClientError::InvalidConfig): an option is out of range \
             ([`ClientConfig::validate`](crate::ClientConfig::validate)); nothing is opened.\n",
            "- [`InvalidUri`](crate::ClientError::InvalidUri): no URI given nor configured \
             ([`UriError::Missing`](crate::UriError::Missing)), or one that does not parse, \
             has an unknown scheme or no host, or needs a Cargo feature this build lacks.\n",
            "- [`Proxy`](crate::ClientError::Proxy): the proxy URL does not parse, or the \
             proxy refused or failed the tunnel.\n",
            "- `Tls`: a CA, certificate or key file cannot be read or parsed (before any \
             connection), or the handshake failed (unknown CA, wrong host name, expired \
             certificate).\n",
            "- [`Store`](crate::ClientError::Store): the durable session store cannot be \
             opened (for example another process holds it).\n",
            "- [`AlreadyConnected`](crate::ClientError::AlreadyConnected): this client's \
             connection task runs already (connected, connecting or reconnecting).\n",
            "- [`Connect`](crate::ClientError::Connect): the broker refused the connection in \
             CONNACK (bad credentials, not authorized, ...), with its reason.\n",
            "- [`Timeout`](crate::ClientError::Timeout): TCP, TLS, WebSocket and CONNACK took \
             longer than `connect_timeout` together.\n",
            "- [`Io`](crate::ClientError::Io), `WebSocket`, `Quic`: the transport could not \
             be opened, or failed.\n",
            "- [`ConnectionLost`](crate::ClientError::ConnectionLost), \
             [`Protocol`](crate::ClientError::Protocol): the broker closed the connection or \
             broke the protocol before CONNACK.\n",
            "- [`Auth`](crate::ClientError::Auth): MQTT 5 enhanced authentication failed on \
             the client's side.\n",
            "- [`Closed`](crate::ClientError::Closed): `disconnect`, `cancel_tasks` or \
             dropping every handle ended the attempt.\n\n",
            "With `auto_reconnect` on, a failure that can heal (I/O, a timeout, a busy \
             broker) is retried over every configured URI as `reconnect_retries` allows, and \
             the error is the last attempt's; one that cannot (an invalid URI, bad \
             credentials, a refused certificate) fails at once."
        )
    };
}

/// What the completion of a publish fails with (`publish(..).await`, [`PublishFuture`],
/// `acknowledgement()`).
macro_rules! publish_errors {
    () => {
        concat!(
            "- [`NotConnected`](crate::ClientError::NotConnected): no connection task runs \
             (before `connect`, after `disconnect`, or once reconnecting gave up); nothing is \
             sent.\n",
            "- [`InvalidTopic`](crate::ClientError::InvalidTopic): the topic is not a valid \
             topic name; nothing is sent.\n",
            "- [`Session`](crate::ClientError::Session): the broker's last CONNACK forbids \
             the message (larger than its Maximum Packet Size, retain or this QoS not \
             available, a topic alias above its maximum; the \
             [`SessionError`](crate::SessionError) says which). Checked at acceptance, so \
             nothing is sent; a QoS 1/2 message accepted before a reconnect to a broker with \
             smaller limits fails so when it comes to be sent.\n",
            "- [`Timeout`](crate::ClientError::Timeout): the `ack_timeout` passed (an \
             accepted message stays in flight and may still be delivered).\n",
            "- [`Rejected`](crate::ClientError::Rejected): QoS 1/2 in MQTT 5, the broker \
             refused the message with a reason code of 0x80 or above.\n",
            "- [`SessionLost`](crate::ClientError::SessionLost): QoS 1/2, the broker lost \
             the session while the message was in flight.\n",
            "- [`Publish`](crate::ClientError::Publish): its MQTT 5 message expiry interval \
             ran out before it could be sent \
             ([`PublishError::Expired`](crate::PublishError::Expired)).\n",
            "- [`Store`](crate::ClientError::Store): the durable store could not record or \
             sync it; it was not sent.\n",
            "- [`Closed`](crate::ClientError::Closed): `disconnect` without a drain, \
             `cancel_tasks` or dropping every handle ended the wait (outcome unknown).\n",
            "- QoS 1/2: ",
            ended_errors!(),
            "\n\n",
            "A QoS 0 publish completes at acceptance, so only the first four apply to it."
        )
    };
}

/// What `subscribe`, `unsubscribe` and their `_with` forms fail with.
macro_rules! subscribe_errors {
    () => {
        concat!(
            "- [`NotConnected`](crate::ClientError::NotConnected): no connection task runs \
             (before `connect`, after `disconnect`, or once reconnecting gave up). During an \
             automatic reconnect the call waits for the connection instead.\n",
            "- [`InvalidTopic`](crate::ClientError::InvalidTopic): a filter is invalid; \
             nothing is sent.\n",
            "- [`Session`](crate::ClientError::Session): no filter given \
             ([`SessionError::NoFilters`](crate::SessionError::NoFilters)), the packet is \
             larger than the broker's Maximum Packet Size, or no packet identifier is free.\n",
            "- [`Store`](crate::ClientError::Store): the durable store could not record the \
             change.\n",
            "- [`Closed`](crate::ClientError::Closed): `disconnect`, `cancel_tasks` or \
             dropping every handle ended the wait.\n",
            "- ",
            ended_errors!(),
            "\n\n",
            "A filter the broker refuses is no error: its reason code in the answer says so \
             (0x80 or above)."
        )
    };
}
