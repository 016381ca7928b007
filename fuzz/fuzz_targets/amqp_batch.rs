//! An Event Hubs sender's delivery, as the AMQP endpoint unpacks it: the message is
//! decoded, then taken as a batch (message format 0x80013700: one encoded message in
//! each Data section) and as a single event; each event then goes back out as the
//! message a consumer reads.
//!
//! Must never panic. What the publish path stores must decode again, but some bodies'
//! stored sections do not yet (an amqp-sequence, an amqp-value holding an array: README
//! "Fuzzing and faults"), so that check panics only with FUZZ_STRICT_AMQP_SECTIONS set;
//! without it, CI's bounded run would fail on the known bug at random.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_amqp::message::{self, AMQP_SECTIONS, BATCH_FORMAT};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = message::decode(data) else {
        return;
    };
    for format in [Some(BATCH_FORMAT), None] {
        let Ok(events) = message::events(msg.clone(), format) else {
            continue;
        };
        for event in &events {
            let headers: Vec<(&[u8], Option<&[u8]>)> = event
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), Some(v.as_slice())))
                .collect();
            // The stored sections must read back, or a consumer loses them.
            if let Some((_, sections)) = event.headers.iter().find(|(k, _)| k == AMQP_SECTIONS) {
                if let Err(e) = message::decode(sections) {
                    if std::env::var_os("FUZZ_STRICT_AMQP_SECTIONS").is_some() {
                        panic!("stored AMQP sections do not decode: {e}");
                    }
                }
            }
            let out = message::from_record(None, Some(&event.value), &headers, 0, 0);
            let _ = message::encode(&out);
        }
    }
});
