//! Decodes arbitrary bytes as an MQTT 5.0 packet stream (see `mqtt_fuzz::decode_stream`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mqtt_fuzz::decode_stream(data, sansmqtt_proto::ProtocolVersion::V5));
