//! Sans-IO MQTT client state machine.
//!
//! Not implemented yet: this crate is filled by the issue "mqtt-session: the sans-IO client
//! state machine". It exposes nothing until then, so nothing can mistake it for working code.
