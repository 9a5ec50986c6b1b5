//! amqtt's config shapes: seconds as numbers, QoS as 0/1/2, versions as "3.1.1"/"5.0",
//! the `broker` section.

use std::path::PathBuf;

use super::ClientConfig;

/// amqtt's `broker` (or `connection`) section: where the broker is and which CAs to trust.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BrokerSection {
    uri: Option<String>,
    #[serde(alias = "ca_file")]
    cafile: Option<PathBuf>,
    #[serde(alias = "ca_path")]
    capath: Option<PathBuf>,
    #[serde(alias = "ca_data")]
    cadata: Option<String>,
    #[serde(alias = "cert_file")]
    certfile: Option<PathBuf>,
    #[serde(alias = "key_file")]
    keyfile: Option<PathBuf>,
}

impl BrokerSection {
    /// Moves the section's settings into `config`; one also given at the top level is an
    /// error (which of the two was meant cannot be guessed).
    pub(super) fn fold_into<E: serde::de::Error>(self, config: &mut ClientConfig) -> Result<(), E> {
        fn put<T, E: serde::de::Error>(
            slot: &mut Option<T>,
            value: Option<T>,
            key: &str,
        ) -> Result<(), E> {
            if let Some(value) = value {
                if slot.is_some() {
                    return Err(E::custom(format!(
                        "`{key}` is given both at the top level and in the `broker` section"
                    )));
                }
                *slot = Some(value);
            }
            Ok(())
        }
        put(&mut config.uri, self.uri, "uri")?;
        put(&mut config.ca_file, self.cafile, "cafile")?;
        put(&mut config.ca_path, self.capath, "capath")?;
        put(&mut config.ca_data, self.cadata, "cadata")?;
        put(&mut config.cert_file, self.certfile, "certfile")?;
        put(&mut config.key_file, self.keyfile, "keyfile")?;
        Ok(())
    }
}

pub(super) mod proxy {
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<crate::Proxy>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|url| crate::Proxy::parse(&url).map_err(serde::de::Error::custom))
            .transpose()
    }
}

pub(super) mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

pub(super) mod opt_secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

pub(super) mod qos {
    use sansmqtt_proto::QoS;
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<QoS, D::Error> {
        let value = u8::deserialize(d)?;
        QoS::from_u8(value).ok_or_else(|| serde::de::Error::custom("QoS must be 0, 1 or 2"))
    }
}

pub(super) mod opt_qos {
    use sansmqtt_proto::QoS;
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<QoS>, D::Error> {
        Option::<u8>::deserialize(d)?
            .map(|v| {
                QoS::from_u8(v).ok_or_else(|| serde::de::Error::custom("QoS must be 0, 1 or 2"))
            })
            .transpose()
    }
}

pub(super) mod version {
    use sansmqtt_proto::ProtocolVersion;
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<ProtocolVersion, D::Error> {
        match String::deserialize(d)?.as_str() {
            "3.1.1" | "4" | "v311" => Ok(ProtocolVersion::V311),
            "5" | "5.0" | "v5" => Ok(ProtocolVersion::V5),
            other => Err(serde::de::Error::custom(format!(
                "unsupported protocol version {other:?}"
            ))),
        }
    }
}

pub(super) mod retries {
    use serde::{Deserialize, Deserializer};

    /// amqtt's convention: a negative count (or none) retries forever.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.and_then(|n| u32::try_from(n).ok()))
    }
}

pub(super) mod jitter {
    use crate::reconnect::Jitter;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Percent(u8),
        Name(String),
    }

    /// `"none"`, `"full"`, or a percentage for a ±spread (`25`).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Jitter, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Percent(0) => Ok(Jitter::None),
            Raw::Percent(percent) if percent <= 100 => Ok(Jitter::Spread { percent }),
            Raw::Percent(percent) => Err(serde::de::Error::custom(format!(
                "reconnect_jitter {percent}% is above 100%"
            ))),
            Raw::Name(name) => match name.as_str() {
                "none" => Ok(Jitter::None),
                "full" => Ok(Jitter::Full),
                other => Err(serde::de::Error::custom(format!(
                    "reconnect_jitter must be \"none\", \"full\" or a percentage, not {other:?}"
                ))),
            },
        }
    }
}

pub(super) mod bytes {
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}
