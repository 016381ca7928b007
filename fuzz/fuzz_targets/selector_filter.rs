//! A receiver link's selector filter expression (`apache.org:selector-filter:string`),
//! which any AMQP client may send: parsed into a start position.
//!
//! Must never panic, and must refuse oversized input before looking at it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_amqp::filter::{parse_selector, FilterError, StartAt, MAX_SELECTOR_LEN};

fuzz_target!(|data: &[u8]| {
    // The endpoint hands the parser an AMQP string, which is valid UTF-8; lossy
    // conversion still lets arbitrary bytes reach it.
    let expr = String::from_utf8_lossy(data);
    match parse_selector(&expr) {
        Ok(StartAt::Offset { value, .. }) => assert!(value >= 0, "negative offset {value}"),
        Ok(_) => {}
        Err(error) => {
            if expr.len() > MAX_SELECTOR_LEN {
                assert!(matches!(error, FilterError::TooLong { .. }));
            }
            // Messages echo at most a short piece of the input.
            assert!(error.to_string().len() < 512);
        }
    }
});
