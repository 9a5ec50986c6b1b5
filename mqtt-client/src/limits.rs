//! The server's last CONNACK limits where a publish is accepted: [`Acceptance`] holds the
//! session's [`PublishLimits`] packed in one atomic word, so checking a message on the
//! caller's task costs one load (no lock beside the command queue's), and a QoS 0 publish,
//! which completes at acceptance, is refused there instead of reported `Ok` and dropped.

use std::sync::atomic::{AtomicU64, Ordering};

use sansmqtt_proto::topic::validate_topic_name;
use sansmqtt_proto::{ProtocolVersion, Publish, QoS};
use sansmqtt_session::{PublishLimits, SessionError};

/// Set while limits are known (a CONNACK was received).
const KNOWN: u64 = 1 << 63;
const V5: u64 = 1 << 62;
const RETAIN: u64 = 1 << 61;
const QOS_SHIFT: u32 = 48;
const ALIAS_SHIFT: u32 = 32;

/// The publish limits of the last CONNACK, shared by the client's handles and its driver.
#[derive(Default)]
pub(crate) struct Acceptance(AtomicU64);

impl Acceptance {
    /// Records the limits of a CONNACK (the driver, on every connection).
    pub(crate) fn set(&self, limits: PublishLimits) {
        self.0.store(pack(limits), Ordering::Release);
    }

    /// The limits of the last CONNACK, if there was one.
    pub(crate) fn get(&self) -> Option<PublishLimits> {
        unpack(self.0.load(Ordering::Acquire))
    }

    /// What the last CONNACK forbids for `publish`; before any CONNACK, only its topic is
    /// checked (an empty topic with an MQTT 5 topic alias is the session's to judge).
    pub(crate) fn check(&self, publish: &mut Publish) -> Result<(), SessionError> {
        match self.get() {
            Some(limits) => limits.check(publish),
            None => {
                let aliased = publish.topic.is_empty() && publish.properties.topic_alias.is_some();
                if aliased {
                    return Ok(());
                }
                Ok(validate_topic_name(&publish.topic)?)
            }
        }
    }
}

fn pack(limits: PublishLimits) -> u64 {
    let mut word = KNOWN
        | (u64::from(limits.maximum_qos as u8) << QOS_SHIFT)
        | (u64::from(limits.topic_alias_maximum) << ALIAS_SHIFT)
        | u64::from(limits.maximum_packet_size);
    if limits.protocol_version.is_v5() {
        word |= V5;
    }
    if limits.retain_available {
        word |= RETAIN;
    }
    word
}

fn unpack(word: u64) -> Option<PublishLimits> {
    if word & KNOWN == 0 {
        return None;
    }
    let version = if word & V5 != 0 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    let maximum_qos = match (word >> QOS_SHIFT) & 0b11 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    Some(PublishLimits {
        maximum_qos,
        retain_available: word & RETAIN != 0,
        maximum_packet_size: (word & u64::from(u32::MAX)) as u32,
        topic_alias_maximum: ((word >> ALIAS_SHIFT) & u64::from(u16::MAX)) as u16,
        ..PublishLimits::protocol_defaults(version)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_survive_the_packing() {
        let acceptance = Acceptance::default();
        assert_eq!(acceptance.get(), None);
        for limits in [
            PublishLimits::protocol_defaults(ProtocolVersion::V311),
            PublishLimits::protocol_defaults(ProtocolVersion::V5),
            PublishLimits {
                maximum_qos: QoS::AtMostOnce,
                retain_available: false,
                maximum_packet_size: u32::MAX,
                topic_alias_maximum: u16::MAX,
                ..PublishLimits::protocol_defaults(ProtocolVersion::V5)
            },
            PublishLimits {
                maximum_qos: QoS::AtLeastOnce,
                maximum_packet_size: 20,
                topic_alias_maximum: 3,
                ..PublishLimits::protocol_defaults(ProtocolVersion::V311)
            },
        ] {
            acceptance.set(limits);
            assert_eq!(acceptance.get(), Some(limits));
        }
    }

    #[test]
    fn before_a_connack_only_the_topic_is_checked() {
        let acceptance = Acceptance::default();
        let mut big = Publish::new("t", vec![0u8; 1 << 20]);
        big.retain = true;
        big.qos = QoS::ExactlyOnce;
        assert_eq!(acceptance.check(&mut big), Ok(()));
        let mut wild = Publish::new("t/#", "x");
        assert!(matches!(
            acceptance.check(&mut wild),
            Err(SessionError::InvalidTopic(_))
        ));
        acceptance.set(PublishLimits {
            maximum_packet_size: 1000,
            ..PublishLimits::protocol_defaults(ProtocolVersion::V5)
        });
        assert!(matches!(
            acceptance.check(&mut big),
            Err(SessionError::PacketTooLarge { max: 1000, .. })
        ));
    }
}
