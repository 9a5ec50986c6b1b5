//! The MQTT 5 surface of the client: subscription options and identifiers, UNSUBSCRIBE and
//! DISCONNECT properties, and what the broker said in SUBACK / UNSUBACK
//! ([`Acknowledgement`]).
//!
//! Subscription options (no-local, retain-as-published, retain handling) travel in each
//! [`SubscribeFilter`]'s [`SubscriptionOptions`](sansmqtt_proto::SubscriptionOptions), so
//! `subscribe` and [`subscribe_with`](MqttClient::subscribe_with) take them as they take a
//! `(filter, qos)` pair.

use sansmqtt_proto::properties::{
    AckProperties, SubscribeProperties, SubscriptionId, UnsubscribeProperties, UserProperty,
};
use sansmqtt_proto::topic::IntoTopic;
use sansmqtt_proto::{ReasonCode, SubscribeFilter};

use crate::driver::Command;
use crate::{ApplicationMessage, ClientError, MqttClient, Runtime};

/// The broker's answer to SUBSCRIBE or UNSUBSCRIBE: one reason code per filter (granted QoS
/// or why not; MQTT 3.1.1 UNSUBACK carries none) and, in MQTT 5, the reason string and user
/// properties.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Acknowledgement {
    /// One code per filter, in the order given.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 SUBACK / UNSUBACK properties.
    pub properties: AckProperties,
}

impl Acknowledgement {
    pub(crate) fn new(reason_codes: Vec<ReasonCode>, properties: AckProperties) -> Self {
        Self {
            reason_codes,
            properties,
        }
    }

    /// The broker's human-readable diagnostic (MQTT 5), if it sent one.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties.reason_string.as_deref()
    }

    /// The broker's user properties (MQTT 5).
    pub fn user_properties(&self) -> &[UserProperty] {
        &self.properties.user_properties
    }
}

/// A publish's final acknowledgement (PUBACK at QoS 1, PUBCOMP at QoS 2): the reason code
/// and, in MQTT 5, the reason string and user properties the broker attached. What
/// [`Publishing::acknowledgement`](crate::Publishing::acknowledgement) resolves with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishAck {
    /// `Success`, or MQTT 5's `NoMatchingSubscribers` (other codes are rejections, reported
    /// as [`ClientError::Rejected`]).
    pub reason_code: ReasonCode,
    /// MQTT 5 PUBACK / PUBCOMP properties.
    pub properties: AckProperties,
}

impl PublishAck {
    pub(crate) fn new(reason_code: ReasonCode, properties: AckProperties) -> Self {
        Self {
            reason_code,
            properties,
        }
    }

    /// What a QoS 0 publish completes with.
    pub(crate) fn success() -> Self {
        Self::new(ReasonCode::Success, AckProperties::default())
    }

    /// The broker's human-readable diagnostic (MQTT 5), if it sent one.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties.reason_string.as_deref()
    }

    /// The broker's user properties (MQTT 5).
    pub fn user_properties(&self) -> &[UserProperty] {
        &self.properties.user_properties
    }
}

impl<R: Runtime> MqttClient<R> {
    /// [`subscribe`](Self::subscribe) with MQTT 5 SUBSCRIBE properties (a subscription
    /// identifier, which every message matching these filters then carries, see
    /// [`ApplicationMessage::subscription_identifiers`]; user properties), returning the
    /// whole SUBACK. Each filter's options (no-local, retain-as-published, retain handling)
    /// are in its [`SubscribeFilter`].
    ///
    /// ```no_run
    /// # use sansmqtt_client::{ClientError, MqttClient, QoS, Runtime};
    /// # async fn example<R: Runtime>(client: &MqttClient<R>) -> Result<(), ClientError> {
    /// use sansmqtt_client::proto::properties::{SubscribeProperties, SubscriptionId};
    /// use sansmqtt_client::proto::{RetainHandling, SubscribeFilter};
    ///
    /// let mut filter = SubscribeFilter::new("chat/#", QoS::AtLeastOnce);
    /// filter.options.no_local = true; // not our own messages
    /// filter.options.retain_handling = RetainHandling::DoNotSend;
    /// let properties = SubscribeProperties {
    ///     subscription_identifier: SubscriptionId::new(7),
    ///     ..SubscribeProperties::default()
    /// };
    /// let ack = client.subscribe_with([filter], properties).await?;
    /// assert!(ack.reason_codes[0].is_success());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Like `subscribe`, it waits through an automatic reconnect. It exists beside
    /// `subscribe` (amqtt's, which returns only the codes) for the MQTT 5 properties and the
    /// whole SUBACK.
    ///
    /// # Errors
    ///
    #[doc = subscribe_errors!()]
    pub async fn subscribe_with<I, F>(
        &self,
        topics: I,
        properties: SubscribeProperties,
    ) -> Result<Acknowledgement, ClientError>
    where
        I: IntoIterator<Item = F>,
        F: Into<SubscribeFilter>,
    {
        let filters = topics.into_iter().map(Into::into).collect();
        self.call(|reply| Command::Subscribe {
            filters,
            properties,
            reply,
        })
        .await
    }

    /// [`unsubscribe`](Self::unsubscribe) with MQTT 5 UNSUBSCRIBE properties (user
    /// properties), returning the whole UNSUBACK: the MQTT 5 counterpart of `unsubscribe`
    /// (amqtt's, which returns only the codes).
    ///
    /// # Errors
    ///
    #[doc = subscribe_errors!()]
    pub async fn unsubscribe_with<I, T>(
        &self,
        topics: I,
        properties: UnsubscribeProperties,
    ) -> Result<Acknowledgement, ClientError>
    where
        I: IntoIterator<Item = T>,
        T: IntoTopic,
    {
        let filters = topics.into_iter().map(IntoTopic::into_topic).collect();
        self.call(|reply| Command::Unsubscribe {
            filters,
            properties,
            reply,
        })
        .await
    }
}

impl ApplicationMessage {
    /// MQTT 5: the identifiers of the subscriptions (made with
    /// [`MqttClient::subscribe_with`]) that this message matched; empty for subscriptions
    /// without one, and in MQTT 3.1.1.
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + '_ {
        self.properties()
            .subscription_identifiers
            .iter()
            .map(|id: &SubscriptionId| id.get())
    }
}
