//! Bytes from an AMQP 1.0 peer after the protocol header: the length-delimited framing
//! the transport uses, then each frame body through the AMQP frame decoder and the SASL
//! frame decoder (fe2o3-amqp's, as vendored and shipped in the broker), as the
//! connection and SASL layers run them.
//!
//! Must never panic on what the broker lets through; a peer's bytes end its connection
//! with an error at worst.
#![no_main]

use bytes::BytesMut;
use fe2o3_amqp::frames::{amqp, sasl};
use fe2o3_amqp::transport::protocol_header::ProtocolHeaderCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// The broker's negotiated maximum is larger; a small one reaches the limit checks too.
const MAX_FRAME_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // The protocol header the transport reads first (AMQP, SASL or TLS), then frames.
    let (header, frames) = data.split_at(data.len().min(8));
    let _ = ProtocolHeaderCodec::new().decode(&mut BytesMut::from(header));

    // As fe2o3-amqp's transport builds its decoder.
    let mut framing = LengthDelimitedCodec::builder()
        .big_endian()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_SIZE)
        .length_adjustment(-4)
        .new_codec();
    let mut stream = BytesMut::from(frames);
    while let Ok(Some(frame)) = framing.decode(&mut stream) {
        // The broker's FrameGuard (amqp/src/server.rs) fails the connection at a frame
        // shorter than its 8-byte header before fe2o3 sees it: fe2o3's decoders read
        // the header unchecked and panic on such a frame.
        if frame.len() < 4 {
            break;
        }
        let mut body = frame.clone();
        if let Ok(Some(frame)) = (amqp::FrameDecoder {}).decode(&mut body) {
            let _ = format!("{:?}", frame.body());
        }
        let mut body = frame;
        if let Ok(Some(frame)) = (sasl::FrameCodec {}).decode(&mut body) {
            let _ = format!("{frame:?}");
        }
    }
});
