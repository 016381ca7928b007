//! The `__consumer_offsets` and `__transaction_state` record decoders, as the group and
//! transaction coordinators run them when they load a partition of their topic (whose
//! records any client allowed to produce there could have written). The first byte
//! picks the decoder, the rest is the key or value.
//!
//! Must never panic or allocate beyond a small multiple of the input; what decodes must
//! encode to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_coordinator::group::{self, records as g};
use runnel_coordinator::txn::records as t;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, b)) = data.split_first() else {
        return;
    };
    match selector % 11 {
        0 => {
            if let Ok(key) = g::decode_key(b) {
                let _ = key.group();
            }
        }
        1 => {
            if let Ok(v) = g::decode_offset_value(b) {
                // We write v3, which has no expire timestamp.
                let mut back = g::decode_offset_value(&g::encode_offset_value(&v)).unwrap();
                back.expire_timestamp = v.expire_timestamp;
                assert_eq!(back, v);
            }
        }
        2 => {
            if let Ok(v) = g::decode_group_value(b) {
                let _ = g::decode_group_value(&g::encode_group_value(&v)).unwrap();
            }
        }
        3 => {
            if let Ok(v) = g::decode_epoch_value(b) {
                assert_eq!(g::decode_epoch_value(&g::encode_epoch_value(v)), Ok(v));
            }
        }
        4 => {
            if let Ok(v) = g::decode_consumer_member_value(b) {
                let back = g::decode_consumer_member_value(&g::encode_consumer_member_value(&v));
                assert_eq!(back, Ok(v));
            }
        }
        5 => {
            if let Ok(v) = g::decode_target_member_value(b) {
                let back = g::decode_target_member_value(&g::encode_target_member_value(&v));
                assert_eq!(back, Ok(v));
            }
        }
        6 => {
            if let Ok(v) = g::decode_current_assignment_value(b) {
                let back =
                    g::decode_current_assignment_value(&g::encode_current_assignment_value(&v));
                assert_eq!(back, Ok(v));
            }
        }
        7 => {
            if let Ok(v) = g::decode_regex_value(b) {
                assert_eq!(g::decode_regex_value(&g::encode_regex_value(&v)), Ok(v));
            }
        }
        8 => {
            // A classic member's subscription metadata, as JoinGroup carries it.
            let _ = group::decode_subscription(b);
        }
        9 => {
            if let Ok(id) = t::decode_key(b) {
                assert_eq!(t::decode_key(&t::encode_key(&id)).as_ref(), Ok(&id));
            }
        }
        _ => {
            if let Ok(v) = t::decode_value(b) {
                let back = t::decode_value(&t::encode_value(&v)).unwrap();
                assert_eq!(back.producer_id, v.producer_id);
                assert_eq!(back.state, v.state);
                assert_eq!(back.partitions, v.partitions);
            }
        }
    }
});
