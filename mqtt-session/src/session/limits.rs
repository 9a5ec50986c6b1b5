//! What the server's last CONNACK forbids a publish ([`PublishLimits`]), as a small value a
//! driver can copy out of the session and check a message against at the moment it accepts
//! it, before the message reaches the session (a QoS 0 publish completes there).

use super::*;

/// What a PUBLISH without properties adds to its topic and payload, at most: the fixed
/// header (1 + a remaining length of up to 4), the topic's length prefix (2), a packet id (2)
/// and, in MQTT 5, the empty property length (1).
const HEADROOM: usize = 10;

/// The limits of the server's last CONNACK that a PUBLISH must respect, with the protocol
/// version they were announced in: Maximum QoS, Retain Available, Maximum Packet Size and
/// Topic Alias Maximum (the protocol defaults in MQTT 3.1.1). From
/// [`Session::publish_limits`]; [`check`](Self::check) is the test
/// [`Session::publish`] applies on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLimits {
    /// The protocol version spoken (it decides how a message is sized).
    pub protocol_version: ProtocolVersion,
    /// Highest QoS the server accepts.
    pub maximum_qos: QoS,
    /// Whether retained messages are accepted.
    pub retain_available: bool,
    /// Largest packet the server accepts, in bytes.
    pub maximum_packet_size: u32,
    /// Highest topic alias the server accepts (0: none).
    pub topic_alias_maximum: u16,
}

impl PublishLimits {
    /// The limits of MQTT `version` with nothing announced: any QoS, retain available, the
    /// largest packet the protocol allows, no topic aliases.
    pub fn protocol_defaults(protocol_version: ProtocolVersion) -> Self {
        Self {
            protocol_version,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            maximum_packet_size: sansmqtt_proto::MAX_PACKET_SIZE,
            topic_alias_maximum: 0,
        }
    }

    /// Whether the server would accept `publish`: its QoS, retain flag, topic alias, topic
    /// name and encoded size (counting the packet identifier a QoS 1/2 message is sent with,
    /// which is why it takes the message mutably: the identifier is set for the sizing and
    /// put back). Reads no state but `self`; nothing is sent.
    ///
    /// # Errors
    ///
    /// [`SessionError::QoSNotSupported`], [`SessionError::RetainNotSupported`],
    /// [`SessionError::TopicAliasNotAllowed`], [`SessionError::InvalidTopic`] or
    /// [`SessionError::PacketTooLarge`]: the first rule the message breaks.
    pub fn check(&self, publish: &mut Publish) -> Result<(), SessionError> {
        // [MQTT-3.2.2-11]: no QoS above the server's maximum.
        if publish.qos > self.maximum_qos {
            return Err(SessionError::QoSNotSupported {
                requested: publish.qos,
                maximum: self.maximum_qos,
            });
        }
        // [MQTT-3.2.2-14]: no retained message when retain is not available.
        if publish.retain && !self.retain_available {
            return Err(SessionError::RetainNotSupported);
        }
        // [MQTT-3.3.2-8], [MQTT-3.3.2-9]: no alias of 0 or above the server's maximum.
        if let Some(alias) = publish.properties.topic_alias
            && (alias == 0 || alias > self.topic_alias_maximum)
        {
            return Err(SessionError::TopicAliasNotAllowed {
                alias,
                maximum: self.topic_alias_maximum,
            });
        }
        // The usual message, well below the limit and without properties: its topic is all
        // that is left to check, and sizing it exactly would cost three times as much.
        let bound = publish.topic.len() + publish.payload.len() + HEADROOM;
        if publish.properties.is_empty()
            && !publish.dup
            && publish.packet_id.is_none()
            && bound <= self.maximum_packet_size as usize
        {
            return Ok(validate_topic_name(&publish.topic)?);
        }
        // A packet id is added when sent: check the size as it will be.
        let id = publish.packet_id;
        if publish.qos != QoS::AtMostOnce {
            publish.packet_id = Some(PacketId::MAX);
        }
        let checked = self.check_size(publish);
        publish.packet_id = id;
        checked
    }

    /// [MQTT-3.1.2-24]: nothing larger than the server's maximum packet size. Sizing the
    /// packet validates it (a topic name, for a PUBLISH) too.
    pub(super) fn check_size<P: Encode>(&self, packet: &P) -> Result<(), SessionError> {
        let size = packet
            .encoded_len(self.protocol_version)
            .map_err(|err| match err {
                EncodeError::InvalidTopic(topic) => SessionError::InvalidTopic(topic),
                other => SessionError::Encode(other),
            })?;
        if size > self.maximum_packet_size as usize {
            return Err(SessionError::PacketTooLarge {
                size,
                max: self.maximum_packet_size,
            });
        }
        Ok(())
    }
}

impl<S: SessionStore, I: Instant> Session<S, I> {
    /// The limits of the server's last CONNACK that a publish must respect (the protocol's
    /// defaults before the first CONNACK). They are kept after the connection ends: they are
    /// the best knowledge of the next connection's until its CONNACK says otherwise.
    pub fn publish_limits(&self) -> PublishLimits {
        PublishLimits {
            protocol_version: self.config.protocol_version,
            maximum_qos: self.limits.maximum_qos,
            retain_available: self.limits.retain_available,
            maximum_packet_size: self.limits.maximum_packet_size,
            topic_alias_maximum: self.limits.topic_alias_maximum,
        }
    }

    /// What the server's CONNACK forbids for this message.
    pub(super) fn check_publish(&self, publish: &mut Publish) -> Result<(), SessionError> {
        self.publish_limits().check(publish)
    }

    /// [MQTT-3.1.2-24] for any packet.
    pub(super) fn check_size<P: Encode>(&self, packet: &P) -> Result<(), SessionError> {
        self.publish_limits().check_size(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PublishLimits {
        PublishLimits {
            maximum_qos: QoS::AtLeastOnce,
            retain_available: false,
            maximum_packet_size: 64,
            topic_alias_maximum: 2,
            ..PublishLimits::protocol_defaults(ProtocolVersion::V5)
        }
    }

    fn message(topic: &str, payload: usize, qos: QoS) -> Publish {
        Publish {
            qos,
            ..Publish::new(topic, vec![0u8; payload])
        }
    }

    #[test]
    fn each_connack_limit_refuses_with_its_own_error() {
        let l = limits();
        assert_eq!(l.check(&mut message("a", 1, QoS::AtLeastOnce)), Ok(()));
        assert_eq!(
            l.check(&mut message("a", 1, QoS::ExactlyOnce)),
            Err(SessionError::QoSNotSupported {
                requested: QoS::ExactlyOnce,
                maximum: QoS::AtLeastOnce
            })
        );
        let mut retained = message("a", 1, QoS::AtMostOnce);
        retained.retain = true;
        assert_eq!(
            l.check(&mut retained),
            Err(SessionError::RetainNotSupported)
        );
        let mut aliased = message("a", 1, QoS::AtMostOnce);
        aliased.properties.topic_alias = Some(3);
        assert_eq!(
            l.check(&mut aliased),
            Err(SessionError::TopicAliasNotAllowed {
                alias: 3,
                maximum: 2
            })
        );
        assert!(matches!(
            l.check(&mut message("a/+", 1, QoS::AtMostOnce)),
            Err(SessionError::InvalidTopic(_))
        ));
    }

    #[test]
    fn size_counts_the_packet_id_of_qos1_and_leaves_the_message_unchanged() {
        let l = limits();
        // QoS 0: 2 (fixed header) + 2 + 1 (topic) + 1 (properties) + 58 = 64.
        assert_eq!(l.check(&mut message("a", 58, QoS::AtMostOnce)), Ok(()));
        assert_eq!(
            l.check(&mut message("a", 59, QoS::AtMostOnce)),
            Err(SessionError::PacketTooLarge { size: 65, max: 64 })
        );
        // QoS 1 carries two more bytes of packet id.
        let mut qos1 = message("a", 56, QoS::AtLeastOnce);
        assert_eq!(l.check(&mut qos1), Ok(()));
        assert_eq!(qos1.packet_id, None, "the id set for sizing is put back");
        assert_eq!(
            l.check(&mut message("a", 57, QoS::AtLeastOnce)),
            Err(SessionError::PacketTooLarge { size: 65, max: 64 })
        );
    }

    #[test]
    fn the_quick_path_agrees_with_exact_sizing_at_every_size() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                for max in [20u32, 130, 16_390] {
                    let l = PublishLimits {
                        maximum_packet_size: max,
                        ..PublishLimits::protocol_defaults(version)
                    };
                    for payload in 0..max as usize {
                        let mut m = message("t/x", payload, qos);
                        let exact = m
                            .clone()
                            .encoded_len_with_id(version)
                            .is_some_and(|size| size <= max as usize);
                        assert_eq!(
                            l.check(&mut m).is_ok(),
                            exact,
                            "{version:?} {qos:?} max {max} payload {payload}"
                        );
                    }
                }
            }
        }
        let l = PublishLimits::protocol_defaults(ProtocolVersion::V5);
        assert!(matches!(
            l.check(&mut message("t/#", 1, QoS::AtMostOnce)),
            Err(SessionError::InvalidTopic(_))
        ));
    }

    trait WithId {
        fn encoded_len_with_id(self, version: ProtocolVersion) -> Option<usize>;
    }

    impl WithId for Publish {
        /// The exact size on the wire, packet id included.
        fn encoded_len_with_id(mut self, version: ProtocolVersion) -> Option<usize> {
            if self.qos != QoS::AtMostOnce {
                self.packet_id = Some(PacketId::MAX);
            }
            self.encoded_len(version).ok()
        }
    }

    #[test]
    fn an_empty_topic_with_an_allowed_alias_passes() {
        let mut aliased = message("", 1, QoS::AtMostOnce);
        aliased.properties.topic_alias = Some(1);
        assert_eq!(limits().check(&mut aliased), Ok(()));
    }
}
