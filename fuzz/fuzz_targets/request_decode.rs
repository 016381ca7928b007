//! Bytes from a client: framing, then request header and body decoding.
//!
//! Must never panic, hang or allocate beyond the input's size; libFuzzer reports a
//! single allocation above `-malloc_limit_mb` (default 2048) as a finding.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use runnel_protocol::api::{decode_request, encode_request};
use runnel_protocol::frame::{FrameDecoder, SIZE_PREFIX_LEN};

fuzz_target!(|data: &[u8]| {
    // The input as a connection's byte stream, with a small frame limit so that both
    // accepted and refused sizes are reached.
    let decoder = FrameDecoder::new(1 << 16);
    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut stream) {
        check(frame);
    }
    // The input as one frame body, so the fuzzer need not get a size prefix right.
    check(Bytes::copy_from_slice(data));
});

fn check(frame: Bytes) {
    match decode_request(frame) {
        Ok(request) => {
            // Re-encoding must not panic either. It need not reproduce the request: the
            // crate keeps an unknown tag >= 2^31 under a negative key and drops it when
            // writing back (harmless here: the broker never re-encodes requests).
            if let Ok(encoded) = encode_request(&request.header, &request.body) {
                let _ = decode_request(encoded.slice(SIZE_PREFIX_LEN..));
            }
        }
        Err(error) => {
            let _ = error.correlation_id();
            let _ = error.response();
        }
    }
}
