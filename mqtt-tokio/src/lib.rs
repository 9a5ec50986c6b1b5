//! MQTT client for Tokio.
//!
//! Not implemented yet: this crate is filled by the issue "mqtt-tokio". It exposes nothing
//! until then.
