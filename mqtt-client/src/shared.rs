//! Shared subscriptions: consumer groups, the way an application that outgrows one consumer
//! process scales out.
//!
//! Every client subscribed to `$share/{group}/{filter}` with the same group takes part in one
//! subscription: the broker hands each matching message to one member of the group instead of
//! to all of them. MQTT 5 defines the form (section 4.8.2); mosquitto (1.6 and later), EMQX,
//! HiveMQ and VerneMQ accept the same string from MQTT 3.1.1 clients too, so one helper serves
//! both protocol versions. How the broker picks the member is its own policy (mosquitto:
//! strict round robin, whatever each member's backlog).

use sansmqtt_proto::topic::{
    IntoTopic, SharedSubscriptionError, TopicError, validate_topic_filter,
};
use sansmqtt_proto::{ByteString, QoS, ReasonCode, SubscribeFilter};

use crate::{ClientError, MqttClient, Runtime, ServerReason};

/// The prefix of a shared subscription's filter.
const PREFIX: &str = "$share/";

/// A validated shared subscription filter, `$share/{group}/{filter}`.
///
/// Built from the group name and the topic filter, so the application never concatenates
/// strings, and checked once, here: the group must be non-empty and free of `/`, `+` and `#`
/// (a `/` would silently move part of the name into the filter), and the filter must be a
/// valid, non-shared topic filter.
///
/// ```
/// use sansmqtt_client::{QoS, SharedSubscription};
///
/// let jobs = SharedSubscription::new("workers", "jobs/#").unwrap();
/// assert_eq!(jobs.as_str(), "$share/workers/jobs/#");
/// assert_eq!(jobs.group(), "workers");
/// assert_eq!(jobs.filter(), "jobs/#");
/// // Subscribe like any filter: `client.subscribe([jobs.with_qos(QoS::AtLeastOnce)])`.
/// let _filter = jobs.with_qos(QoS::AtLeastOnce);
/// assert!(SharedSubscription::new("a/b", "jobs").is_err());
/// ```
///
/// (`sansmqtt_proto::topic::SharedSubscription` is the codec's borrowed view of a filter that
/// was already written out, as returned by `parse_shared`; this type builds one.)
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedSubscription {
    /// The whole filter as sent, `$share/{group}/{filter}`.
    full: ByteString,
    /// The group's length in bytes.
    group_len: usize,
}

impl SharedSubscription {
    /// `$share/{group}/{filter}`, validated.
    ///
    /// # Errors
    ///
    /// [`TopicError::InvalidSharedSubscription`] for an empty group
    /// ([`SharedSubscriptionError::EmptyShareName`]), a group with `+` or `#`
    /// ([`SharedSubscriptionError::WildcardInShareName`]) or with `/`
    /// ([`SharedSubscriptionError::SeparatorInShareName`]); a filter that is itself shared
    /// ([`SharedSubscriptionError::MissingFilter`] when empty); otherwise whatever
    /// [`validate_topic_filter`] reports for the filter or for the whole string (its length,
    /// U+0000).
    pub fn new(group: &str, filter: &str) -> Result<Self, TopicError> {
        let invalid = |e: SharedSubscriptionError| Err(TopicError::InvalidSharedSubscription(e));
        if group.is_empty() {
            return invalid(SharedSubscriptionError::EmptyShareName);
        }
        if group.contains(['+', '#']) {
            return invalid(SharedSubscriptionError::WildcardInShareName);
        }
        if group.contains('/') {
            return invalid(SharedSubscriptionError::SeparatorInShareName);
        }
        if filter.is_empty() {
            return invalid(SharedSubscriptionError::MissingFilter);
        }
        // A shared filter inside a shared filter would be matched as the literal topic
        // `$share/...`, which no broker delivers to: refuse it rather than subscribe to nothing.
        if filter.starts_with(PREFIX) {
            return invalid(SharedSubscriptionError::MissingFilter);
        }
        validate_topic_filter(filter)?;
        let full = format!("{PREFIX}{group}/{filter}");
        // The length limit and U+0000 apply to the string as sent.
        validate_topic_filter(&full)?;
        Ok(Self {
            full: full.into(),
            group_len: group.len(),
        })
    }

    /// The group (ShareName).
    pub fn group(&self) -> &str {
        &self.full[PREFIX.len()..PREFIX.len() + self.group_len]
    }

    /// The topic filter messages are matched against.
    pub fn filter(&self) -> &str {
        &self.full[PREFIX.len() + self.group_len + 1..]
    }

    /// The filter as sent: `$share/{group}/{filter}`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// This subscription at `qos`, to pass to [`MqttClient::subscribe`] (with other filters
    /// if need be) or [`MqttClient::subscribe_with`].
    pub fn with_qos(&self, qos: QoS) -> SubscribeFilter {
        SubscribeFilter::new(self.full.clone(), qos)
    }
}

impl std::fmt::Display for SharedSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// For [`MqttClient::unsubscribe`]: a shared subscription is left with the same string.
impl From<SharedSubscription> for ByteString {
    fn from(shared: SharedSubscription) -> Self {
        shared.full
    }
}

impl From<&SharedSubscription> for ByteString {
    fn from(shared: &SharedSubscription) -> Self {
        shared.full.clone()
    }
}

/// For [`MqttClient::unsubscribe`]: `client.unsubscribe([shared])` leaves the group.
impl IntoTopic for SharedSubscription {
    fn into_topic(self) -> ByteString {
        self.full
    }
}

impl IntoTopic for &SharedSubscription {
    fn into_topic(self) -> ByteString {
        self.full.clone()
    }
}

impl<R: Runtime> MqttClient<R> {
    /// Joins consumer group `group` for messages matching `filter` at `qos`: subscribes to
    /// `$share/{group}/{filter}` (see [`SharedSubscription`]) and returns the QoS the broker
    /// granted. Leave the group with
    /// `unsubscribe([SharedSubscription::new(group, filter)?])`.
    ///
    /// With QoS 1/2 and [`ClientConfig::manual_acks`](crate::ClientConfig::manual_acks), a
    /// message is acknowledged only once the application called [`ack`](Self::ack); a member
    /// that dies before acknowledging leaves the message with its session at the broker,
    /// which re-sends it when that session reconnects (a persistent session:
    /// `clean_session(false)` and the same client id). Whether the broker also hands a dead
    /// member's messages to the other members is its own policy (MQTT 5 says SHOULD once the
    /// session ends; mosquitto 2.0 does not).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidTopic`] for an invalid group or filter (nothing is sent);
    /// [`ClientError::Rejected`] when the broker refuses the subscription (for example MQTT 5's
    /// "Shared Subscriptions not supported", or a 3.1.1 broker's failure return code);
    /// otherwise what [`subscribe`](Self::subscribe) fails with.
    pub async fn subscribe_shared(
        &self,
        group: &str,
        filter: &str,
        qos: QoS,
    ) -> Result<QoS, ClientError> {
        let shared = SharedSubscription::new(group, filter)?;
        let ack = self
            .subscribe_with([shared.with_qos(qos)], Default::default())
            .await?;
        let code = ack
            .reason_codes
            .first()
            .copied()
            .unwrap_or(ReasonCode::UnspecifiedError);
        match code.granted_qos() {
            Some(granted) => Ok(granted),
            None => Err(ClientError::Rejected(ServerReason::with_properties(
                code,
                ack.properties.reason_string,
                ack.properties.user_properties,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_error(result: Result<SharedSubscription, TopicError>) -> SharedSubscriptionError {
        match result {
            Err(TopicError::InvalidSharedSubscription(e)) => e,
            other => panic!("expected a shared-subscription error, got {other:?}"),
        }
    }

    #[test]
    fn builds_the_share_filter() {
        let s = SharedSubscription::new("workers", "jobs/+/high").expect("valid");
        assert_eq!(s.as_str(), "$share/workers/jobs/+/high");
        assert_eq!(s.group(), "workers");
        assert_eq!(s.filter(), "jobs/+/high");
        assert_eq!(s.to_string(), "$share/workers/jobs/+/high");
        let filter = s.with_qos(QoS::ExactlyOnce);
        assert_eq!(&*filter.filter, "$share/workers/jobs/+/high");
        assert_eq!(filter.options.qos, QoS::ExactlyOnce);
        assert_eq!(ByteString::from(&s), "$share/workers/jobs/+/high");
        assert_eq!((&s).into_topic(), "$share/workers/jobs/+/high");
        assert_eq!(s.clone().into_topic(), "$share/workers/jobs/+/high");
        // What the codec parses back is what was built.
        let parsed = sansmqtt_proto::topic::parse_shared(s.as_str())
            .expect("valid")
            .expect("shared");
        assert_eq!((parsed.group, parsed.filter), ("workers", "jobs/+/high"));
    }

    #[test]
    fn multibyte_group_and_filter() {
        let s = SharedSubscription::new("grüppe", "straße/#").expect("valid");
        assert_eq!(s.group(), "grüppe");
        assert_eq!(s.filter(), "straße/#");
    }

    #[test]
    fn refuses_bad_groups() {
        use SharedSubscriptionError::*;
        assert_eq!(
            shared_error(SharedSubscription::new("", "a")),
            EmptyShareName
        );
        assert_eq!(
            shared_error(SharedSubscription::new("a+", "a")),
            WildcardInShareName
        );
        assert_eq!(
            shared_error(SharedSubscription::new("#", "a")),
            WildcardInShareName
        );
        assert_eq!(
            shared_error(SharedSubscription::new("a/b", "a")),
            SeparatorInShareName
        );
        assert_eq!(
            shared_error(SharedSubscription::new("/", "a")),
            SeparatorInShareName
        );
    }

    #[test]
    fn refuses_bad_filters() {
        assert_eq!(
            shared_error(SharedSubscription::new("g", "")),
            SharedSubscriptionError::MissingFilter
        );
        assert_eq!(
            shared_error(SharedSubscription::new("g", "$share/h/x")),
            SharedSubscriptionError::MissingFilter
        );
        assert_eq!(
            SharedSubscription::new("g", "a/#/b"),
            Err(TopicError::InvalidMultiLevelWildcard)
        );
        assert_eq!(
            SharedSubscription::new("g", "a+"),
            Err(TopicError::InvalidSingleLevelWildcard)
        );
        assert_eq!(
            SharedSubscription::new("g\0", "a"),
            Err(TopicError::NullCharacter)
        );
        let long = "x".repeat(65_535 - "$share/g/".len());
        assert!(SharedSubscription::new("g", &long).is_ok());
        assert_eq!(
            SharedSubscription::new("g", &format!("{long}x")),
            Err(TopicError::TooLong)
        );
    }
}
