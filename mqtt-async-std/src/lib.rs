//! MQTT client for async-std and smol.
//!
//! Not implemented yet: this crate is filled by the issue "mqtt-async-std". It exposes nothing
//! until then.
