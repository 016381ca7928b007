//! The record-batch compression codecs, byte-compatible with what Kafka clients put on
//! the wire: gzip, snappy (Java's xerial framing or raw), lz4 frames (KIP-57) and zstd.
//!
//! The broker stores batches as they arrive and only decompresses for the few places
//! that must look inside (compaction, keyless checks) and in our client. Input comes from
//! the network, so decompression is defensive: `max_output` is a hard cap on the bytes
//! produced, declared sizes are never trusted beyond it, and no input makes it panic.

use std::io::{self, Read, Write};

use thiserror::Error;

use crate::record_batch::Compression;

/// Why a compressed records section could not be decoded (or encoded). The broker maps
/// `TooLarge` to `MESSAGE_TOO_LARGE`/`RECORD_TOO_LARGE` and `Corrupt` to `CORRUPT_MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompressionError {
    #[error("{} data decompresses to more than {limit} bytes", codec_name(*.codec))]
    TooLarge { codec: Compression, limit: usize },
    #[error("corrupt {} data: {reason}", codec_name(*.codec))]
    Corrupt { codec: Compression, reason: String },
    #[error("{} compression failed: {reason}", codec_name(*.codec))]
    Compress { codec: Compression, reason: String },
}

impl CompressionError {
    fn corrupt(codec: Compression, reason: impl ToString) -> Self {
        CompressionError::Corrupt {
            codec,
            reason: reason.to_string(),
        }
    }
    fn compress(codec: Compression, reason: impl ToString) -> Self {
        CompressionError::Compress {
            codec,
            reason: reason.to_string(),
        }
    }
}

/// The codec's name as Kafka's `compression.type` spells it.
pub fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Decompress a records section written with `codec`, producing at most `max_output`
/// bytes. Anything that would decompress to more is refused with `TooLarge` before the
/// extra bytes are buffered.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_output: usize,
) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if input.len() > max_output {
                return Err(CompressionError::TooLarge {
                    codec,
                    limit: max_output,
                });
            }
            Ok(input.to_vec())
        }
        // Kafka's Java client reads concatenated gzip members (GZIPInputStream), so do we.
        Compression::Gzip => read_capped(
            codec,
            flate2::bufread::MultiGzDecoder::new(input),
            input.len(),
            max_output,
        ),
        Compression::Snappy => snappy_decompress(input, max_output),
        Compression::Lz4 => lz4_decompress(input, max_output),
        Compression::Zstd => zstd_decompress(input, max_output),
    }
}

/// Compress a records section the way Kafka's Java producer does, so that every client
/// can read it: gzip at the default level, snappy in xerial framing with 32 KiB blocks,
/// lz4 frames with independent 64 KiB blocks, zstd at level 3.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(input)
                .map_err(|e| CompressionError::compress(codec, e))?;
            enc.finish()
                .map_err(|e| CompressionError::compress(codec, e))
        }
        Compression::Snappy => xerial_compress(input),
        Compression::Lz4 => {
            // Java's KafkaLZ4BlockInputStream refuses linked blocks, so write independent
            // ones; no checksums or content size, exactly like KafkaLZ4BlockOutputStream.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(input.len() / 2 + 64),
            );
            enc.write_all(input)
                .map_err(|e| CompressionError::compress(codec, e))?;
            enc.finish()
                .map_err(|e| CompressionError::compress(codec, e))
        }
        Compression::Zstd => {
            // The single-shot API records the content size in the frame header.
            zstd::bulk::compress(input, ZSTD_LEVEL)
                .map_err(|e| CompressionError::compress(codec, e))
        }
    }
}

/// Kafka's default `compression.zstd.level`.
const ZSTD_LEVEL: i32 = 3;

/// The largest zstd window we agree to decode: 2^27 = 128 MiB, libzstd's default limit
/// (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`). A valid frame without a content size may declare a window larger than
/// its content, so a smaller limit would refuse data Kafka accepts. The window buffer is
/// only touched as output is produced, which `max_output` bounds.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// First growth step of the output buffer; later steps double, up to `max_output`.
const INITIAL_OUTPUT: usize = 16 * 1024;

/// Grow `out` (zero-filled) by `additional` bytes, doubling its capacity to amortise
/// copies but never reserving past `cap`. The caller ensures `out.len() + additional <= cap`.
fn grow_zeroed(out: &mut Vec<u8>, additional: usize, cap: usize) {
    let needed = out.len() + additional;
    if needed > out.capacity() {
        let target = out
            .capacity()
            .saturating_mul(2)
            .max(INITIAL_OUTPUT)
            .min(cap)
            .max(needed);
        out.reserve_exact(target - out.len());
    }
    out.resize(needed, 0);
}

/// Read a decoder to its end into a buffer that never exceeds `max_output` bytes: once
/// the buffer is full, a single probe byte tells a decompression bomb from an exact fit.
fn read_capped<R: Read>(
    codec: Compression,
    mut reader: R,
    input_len: usize,
    max_output: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            if filled >= max_output {
                let mut probe = [0u8; 1];
                return match read_retrying(&mut reader, &mut probe) {
                    Ok(0) => Ok(out),
                    Ok(_) => Err(CompressionError::TooLarge {
                        codec,
                        limit: max_output,
                    }),
                    Err(e) => Err(CompressionError::corrupt(codec, e)),
                };
            }
            // Compressed data usually expands a few times; the input size is only a hint
            // for the first step and is itself bounded by the cap.
            let step = out
                .len()
                .max(input_len.saturating_mul(2))
                .max(INITIAL_OUTPUT);
            grow_zeroed(&mut out, step.min(max_output - filled), max_output);
        }
        match read_retrying(&mut reader, &mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => return Err(CompressionError::corrupt(codec, e)),
        }
    }
    out.truncate(filled);
    Ok(out)
}

fn read_retrying<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------------------
// snappy

/// snappy-java's stream header: magic, then version and minimum compatible version
/// (both big-endian i32, 1 and 1). Kafka's Java producer wraps its output in it.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
/// snappy-java's default block size, which Kafka uses.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// Snappy as Kafka clients write it: Java wraps raw snappy blocks in xerial framing,
/// librdkafka writes one raw snappy block. No raw snappy stream starts with the xerial
/// magic (its first element would be a copy with nothing to copy from), so the magic
/// decides.
fn snappy_decompress(input: &[u8], max_output: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    if input.starts_with(&XERIAL_MAGIC) {
        xerial_decompress(input, &mut out, max_output)?;
    } else {
        snappy_block_into(input, &mut out, max_output)?;
    }
    Ok(out)
}

/// Decode the xerial chunks: after the 16-byte header, repeated [i32 length][raw snappy
/// block]. Like snappy-java, a second header may start a concatenated stream.
fn xerial_decompress(
    input: &[u8],
    out: &mut Vec<u8>,
    max_output: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let mut pos = 0;
    while pos < input.len() {
        let rest = &input[pos..];
        if rest.starts_with(&XERIAL_MAGIC) {
            if rest.len() < XERIAL_HEADER_LEN {
                return Err(CompressionError::corrupt(codec, "truncated xerial header"));
            }
            // Versions are informational: librdkafka ignores them, and every snappy-java
            // version writes the same chunk format.
            pos += XERIAL_HEADER_LEN;
            continue;
        }
        let Some(len_bytes) = rest.get(..4) else {
            return Err(CompressionError::corrupt(
                codec,
                "trailing bytes after the last xerial chunk",
            ));
        };
        let chunk_len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        // Java writes the length as a signed int; a negative one is corrupt.
        if chunk_len > i32::MAX as u32 {
            return Err(CompressionError::corrupt(
                codec,
                "negative xerial chunk length",
            ));
        }
        let chunk_len = chunk_len as usize;
        let Some(chunk) = rest.get(4..4 + chunk_len) else {
            return Err(CompressionError::corrupt(
                codec,
                format!("xerial chunk of {chunk_len} bytes overruns the input"),
            ));
        };
        snappy_block_into(chunk, out, max_output)?;
        pos += 4 + chunk_len;
    }
    Ok(())
}

/// Decode one raw snappy block, appending to `out`. The block's declared length is
/// checked against the cap before anything is allocated.
fn snappy_block_into(
    block: &[u8],
    out: &mut Vec<u8>,
    max_output: usize,
) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let declared =
        snap::raw::decompress_len(block).map_err(|e| CompressionError::corrupt(codec, e))?;
    if declared > max_output - out.len() {
        return Err(CompressionError::TooLarge {
            codec,
            limit: max_output,
        });
    }
    let start = out.len();
    grow_zeroed(out, declared, max_output);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| CompressionError::corrupt(codec, e))?;
    out.truncate(start + written);
    Ok(())
}

/// Write snappy the way Kafka's Java producer does (snappy-java's SnappyOutputStream):
/// xerial header, then 32 KiB input blocks each compressed as raw snappy. Both Java and
/// librdkafka consumers read this; librdkafka itself writes raw snappy, which we read too.
fn xerial_compress(input: &[u8]) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_SIZE) {
        let len_at = out.len();
        let data_at = len_at + 4;
        out.resize(data_at + snap::raw::max_compress_len(block.len()), 0);
        let n = encoder
            .compress(block, &mut out[data_at..])
            .map_err(|e| CompressionError::compress(codec, e))?;
        out.truncate(data_at + n);
        // n <= max_compress_len(32 KiB), far below i32::MAX.
        out[len_at..data_at].copy_from_slice(&(n as u32).to_be_bytes());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// lz4

/// The standard LZ4 frame magic, little-endian on the wire. Kafka (KIP-57, magic v1+)
/// uses standard frames only; legacy and skippable frames are refused.
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

/// Decode one or more LZ4 frames. `lz4_flex` checks the header checksum, block and
/// content checksums and the content size when a frame has them, and decodes both
/// independent (Java) and linked blocks. Its per-frame buffers are bounded by the
/// declared block size, which the format caps at 4 MiB.
fn lz4_decompress(input: &[u8], max_output: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Lz4;
    if !input.starts_with(&LZ4_FRAME_MAGIC) {
        return Err(CompressionError::corrupt(codec, "not an LZ4 frame"));
    }
    let frames = Lz4Frames {
        decoder: lz4_flex::frame::FrameDecoder::new(TrackedSlice {
            rest: input,
            hit_eof: false,
        }),
    };
    read_capped(codec, frames, input.len(), max_output)
}

/// A slice reader that remembers whether anyone tried to read past its end. `lz4_flex`
/// treats running out of input at a block boundary as a clean end; we need to tell that
/// apart from a frame that really ended with its end mark.
struct TrackedSlice<'a> {
    rest: &'a [u8],
    hit_eof: bool,
}

impl Read for TrackedSlice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.rest.is_empty() {
            self.hit_eof = true;
            return Ok(0);
        }
        let n = buf.len().min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        buf[..n].copy_from_slice(head);
        self.rest = tail;
        Ok(n)
    }
}

/// Reads all frames of the input and fails on a frame cut short.
struct Lz4Frames<'a> {
    decoder: lz4_flex::frame::FrameDecoder<TrackedSlice<'a>>,
}

impl Read for Lz4Frames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The decoder returns 0 at a frame's end mark and, wrongly, when the input
            // stops before one.
            let src = self.decoder.get_ref();
            if src.hit_eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "LZ4 frame ends before its end mark",
                ));
            }
            if src.rest.is_empty() {
                return Ok(0);
            }
            // More input: the next frame (each call consumes input, so this terminates).
        }
    }
}

// ---------------------------------------------------------------------------------------
// zstd

/// Decode zstd with the streaming decoder, since frames written by streaming producers
/// may lack a content size. Concatenated frames are decoded in order, as libzstd does.
fn zstd_decompress(input: &[u8], max_output: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Zstd;
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input)
        .map_err(|e| CompressionError::corrupt(codec, e))?;
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(|e| CompressionError::corrupt(codec, e))?;
    read_capped(codec, decoder, input.len(), max_output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    const COMPRESSED: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Compressible but not trivial: repeated text with a counter.
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut i = 0u32;
        while v.len() < len {
            v.extend_from_slice(format!("record-{i} lorem ipsum dolor sit amet; ").as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in CODECS {
            for len in [0, 1, 100, XERIAL_BLOCK_SIZE, XERIAL_BLOCK_SIZE + 1, 300_000] {
                let data = sample(len);
                let packed = compress(codec, &data).expect("compress");
                let unpacked = decompress(codec, &packed, len).expect("decompress");
                assert_eq!(unpacked, data, "{codec:?} len {len}");
            }
        }
    }

    #[test]
    fn incompressible_data_round_trips() {
        // xorshift noise
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for codec in CODECS {
            let packed = compress(codec, &data).expect("compress");
            assert_eq!(
                decompress(codec, &packed, data.len()).expect("decompress"),
                data
            );
        }
    }

    #[test]
    fn exact_cap_fits_and_one_less_is_refused() {
        let data = sample(70_000);
        for codec in CODECS {
            let packed = compress(codec, &data).expect("compress");
            assert_eq!(decompress(codec, &packed, data.len()).expect("fits"), data);
            assert_eq!(
                decompress(codec, &packed, data.len() - 1),
                Err(CompressionError::TooLarge {
                    codec,
                    limit: data.len() - 1
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn decompression_bomb_is_capped() {
        let zeros = vec![0u8; 8 << 20];
        let cap = 1 << 20;
        for codec in COMPRESSED {
            let bomb = compress(codec, &zeros).expect("compress");
            assert!(
                bomb.len() < zeros.len() / 20,
                "{codec:?} should compress zeros well"
            );
            assert_eq!(
                decompress(codec, &bomb, cap),
                Err(CompressionError::TooLarge { codec, limit: cap })
            );
        }
    }

    #[test]
    fn snappy_declared_length_is_not_trusted() {
        // Raw snappy declaring 2^32 - 1 bytes, with no data behind it.
        let lie = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00];
        assert!(matches!(
            decompress(Compression::Snappy, &lie, 1 << 20),
            Err(CompressionError::TooLarge { .. })
        ));
        // The same lie inside a xerial chunk.
        let mut xerial = xerial_header();
        xerial.extend_from_slice(&(lie.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&lie);
        assert!(matches!(
            decompress(Compression::Snappy, &xerial, 1 << 20),
            Err(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn zstd_declared_content_size_is_not_trusted() {
        // A frame header declaring a 4 GiB single-segment content, then nothing.
        // Magic, FHD = single segment + 4-byte content size, FCS.
        let mut lie = vec![0x28, 0xB5, 0x2F, 0xFD, 0xA0];
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decompress(Compression::Zstd, &lie, 1 << 20).is_err());
    }

    fn xerial_header() -> Vec<u8> {
        let mut v = XERIAL_MAGIC.to_vec();
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        v
    }

    /// Known answer: a hand-built snappy-java stream with two chunks, the second using
    /// a back-reference (copy with 1-byte offset).
    #[test]
    fn snappy_xerial_known_answer() {
        let mut stream = xerial_header();
        // Chunk 1: "hello" as a literal. Varint length 5, literal tag (5-1)<<2.
        let chunk1 = [0x05, 0x10, b'h', b'e', b'l', b'l', b'o'];
        // Chunk 2: "abcabcabc" = literal "abc" + copy(len 6, offset 3).
        // Copy-1 tag: ((6-4)<<2) | 0b01 = 0x09, offset byte 3.
        let chunk2 = [0x09, 0x08, b'a', b'b', b'c', 0x09, 0x03];
        for chunk in [&chunk1[..], &chunk2[..]] {
            stream.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            stream.extend_from_slice(chunk);
        }
        assert_eq!(
            decompress(Compression::Snappy, &stream, 100).expect("decode"),
            b"helloabcabcabc"
        );
        // Header only: an empty stream, as snappy-java reads it.
        assert_eq!(
            decompress(Compression::Snappy, &xerial_header(), 100).expect("empty"),
            b""
        );
        // Cut inside the length of a chunk, or inside a chunk: corrupt.
        for cut in [stream.len() - 1, XERIAL_HEADER_LEN + 2] {
            assert!(matches!(
                decompress(Compression::Snappy, &stream[..cut], 100),
                Err(CompressionError::Corrupt { .. })
            ));
        }
        // A negative chunk length.
        let mut neg = xerial_header();
        neg.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFE, 0x00]);
        assert!(decompress(Compression::Snappy, &neg, 100).is_err());
    }

    #[test]
    fn snappy_xerial_compress_layout() {
        let data = sample(XERIAL_BLOCK_SIZE * 2 + 10);
        let packed = compress(Compression::Snappy, &data).expect("compress");
        assert_eq!(&packed[..XERIAL_HEADER_LEN], &xerial_header()[..]);
        // Three chunks: 32 KiB, 32 KiB, 10 bytes, each raw snappy.
        let mut pos = XERIAL_HEADER_LEN;
        let mut sizes = Vec::new();
        while pos < packed.len() {
            let len = u32::from_be_bytes(packed[pos..pos + 4].try_into().expect("4")) as usize;
            let block = &packed[pos + 4..pos + 4 + len];
            sizes.push(snap::raw::decompress_len(block).expect("raw snappy"));
            pos += 4 + len;
        }
        assert_eq!(sizes, vec![XERIAL_BLOCK_SIZE, XERIAL_BLOCK_SIZE, 10]);
    }

    #[test]
    fn snappy_raw_as_librdkafka_writes_it() {
        let data = sample(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).expect("raw");
        assert_eq!(
            decompress(Compression::Snappy, &raw, data.len()).expect("raw decode"),
            data
        );
        // Concatenated xerial streams, as snappy-java reads them.
        let mut two = compress(Compression::Snappy, b"first ").expect("c");
        two.extend(compress(Compression::Snappy, b"second").expect("c"));
        assert_eq!(
            decompress(Compression::Snappy, &two, 100).expect("concat"),
            b"first second"
        );
    }

    /// Known answer: a frame as Java's KafkaLZ4BlockOutputStream writes it (FLG 0x60:
    /// version 1, independent blocks; BD 0x40: 64 KiB; header checksum 0x82), holding
    /// one uncompressed block.
    #[test]
    fn lz4_java_style_frame_known_answer() {
        let mut frame = vec![0x04, 0x22, 0x4D, 0x18, 0x60, 0x40, 0x82];
        frame.extend_from_slice(&(0x8000_0005u32).to_le_bytes());
        frame.extend_from_slice(b"hello");
        frame.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            decompress(Compression::Lz4, &frame, 100).expect("decode"),
            b"hello"
        );
        // Our own frames start with exactly that header.
        let ours = compress(Compression::Lz4, b"hello").expect("compress");
        assert_eq!(&ours[..7], &frame[..7]);
        // Without the end mark, the frame is truncated, not short.
        let cut = &frame[..frame.len() - 4];
        assert!(matches!(
            decompress(Compression::Lz4, cut, 100),
            Err(CompressionError::Corrupt { .. })
        ));
        // An empty uncompressed block before the data is legal and skipped.
        let mut padded = frame[..7].to_vec();
        padded.extend_from_slice(&(0x8000_0000u32).to_le_bytes());
        padded.extend_from_slice(&frame[7..]);
        assert_eq!(
            decompress(Compression::Lz4, &padded, 100).expect("decode"),
            b"hello"
        );
        // A wrong header checksum.
        let mut bad = frame.clone();
        bad[6] ^= 1;
        assert!(decompress(Compression::Lz4, &bad, 100).is_err());
    }

    /// Frames with the optional features librdkafka (liblz4) may set: block checksums,
    /// content checksum, content size, linked blocks, larger blocks.
    #[test]
    fn lz4_frames_with_optional_features() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        let data = sample(600_000);
        let variants = [
            FrameInfo::new().block_checksums(true),
            FrameInfo::new().content_checksum(true),
            FrameInfo::new().content_size(Some(data.len() as u64)),
            FrameInfo::new().block_mode(BlockMode::Linked),
            FrameInfo::new()
                .block_size(BlockSize::Max256KB)
                .block_mode(BlockMode::Linked)
                .block_checksums(true)
                .content_checksum(true)
                .content_size(Some(data.len() as u64)),
            FrameInfo::new().block_size(BlockSize::Max4MB),
        ];
        for info in variants {
            let mut enc = FrameEncoder::with_frame_info(info.clone(), Vec::new());
            enc.write_all(&data).expect("write");
            let frame = enc.finish().expect("finish");
            assert_eq!(
                decompress(Compression::Lz4, &frame, data.len()).expect("decode"),
                data,
                "{info:?}"
            );
        }
        // A wrong content size is caught: splice the header of a frame declaring
        // `data.len()` (magic, FLG, BD, 8-byte size, HC) onto the blocks of a frame
        // holding one byte less (whose own header is 7 bytes).
        let encode = |info: FrameInfo, bytes: &[u8]| {
            let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
            enc.write_all(bytes).expect("write");
            enc.finish().expect("finish")
        };
        let sized = encode(
            FrameInfo::new().content_size(Some(data.len() as u64)),
            &data,
        );
        let short = encode(FrameInfo::new(), &data[1..]);
        let mut lying = sized[..15].to_vec();
        lying.extend_from_slice(&short[7..]);
        assert!(decompress(Compression::Lz4, &lying, data.len() + 10).is_err());
        // A flipped content checksum is caught.
        let mut enc =
            FrameEncoder::with_frame_info(FrameInfo::new().content_checksum(true), Vec::new());
        enc.write_all(&data).expect("write");
        let mut frame = enc.finish().expect("finish");
        let last = frame.len() - 1;
        frame[last] ^= 0x55;
        assert!(decompress(Compression::Lz4, &frame, data.len()).is_err());
    }

    #[test]
    fn lz4_concatenated_frames_and_trailing_garbage() {
        let mut two = compress(Compression::Lz4, b"first ").expect("c");
        two.extend(compress(Compression::Lz4, b"second").expect("c"));
        assert_eq!(
            decompress(Compression::Lz4, &two, 100).expect("concat"),
            b"first second"
        );
        let mut junk = compress(Compression::Lz4, b"data").expect("c");
        junk.extend_from_slice(b"junk");
        assert!(decompress(Compression::Lz4, &junk, 100).is_err());
        // Legacy frames are not Kafka's.
        assert!(decompress(Compression::Lz4, &[0x02, 0x21, 0x4C, 0x18, 0, 0, 0, 0], 100).is_err());
    }

    #[test]
    fn zstd_streamed_frames_without_content_size() {
        let data = sample(300_000);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
        enc.include_contentsize(false).expect("flag");
        enc.include_checksum(true).expect("flag");
        enc.write_all(&data).expect("write");
        let frame = enc.finish().expect("finish");
        assert_eq!(
            decompress(Compression::Zstd, &frame, data.len()).expect("decode"),
            data
        );
        // Truncated frame.
        assert!(decompress(Compression::Zstd, &frame[..frame.len() - 3], data.len()).is_err());
        // Concatenated frames.
        let mut two = compress(Compression::Zstd, b"first ").expect("c");
        two.extend(compress(Compression::Zstd, b"second").expect("c"));
        assert_eq!(
            decompress(Compression::Zstd, &two, 100).expect("concat"),
            b"first second"
        );
    }

    #[test]
    fn gzip_members_and_truncation() {
        let mut two = compress(Compression::Gzip, b"first ").expect("c");
        two.extend(compress(Compression::Gzip, b"second").expect("c"));
        assert_eq!(
            decompress(Compression::Gzip, &two, 100).expect("concat"),
            b"first second"
        );
        let one = compress(Compression::Gzip, &sample(10_000)).expect("c");
        for cut in [0, 5, one.len() / 2, one.len() - 4, one.len() - 1] {
            assert!(
                decompress(Compression::Gzip, &one[..cut], 20_000).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn empty_and_truncated_inputs_are_errors() {
        for codec in COMPRESSED {
            assert!(decompress(codec, &[], 100).is_err(), "{codec:?} empty");
            let packed = compress(codec, &sample(5_000)).expect("c");
            assert!(
                decompress(codec, &packed[..packed.len() / 2], 10_000).is_err(),
                "{codec:?}"
            );
        }
    }

    fn codec() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Gzip),
            Just(Compression::Snappy),
            Just(Compression::Lz4),
            Just(Compression::Zstd),
        ]
    }

    /// Realistic garbage: a valid stream's first bytes (so decoders get past the magic)
    /// followed by random bytes.
    fn prefix_of(codec: Compression) -> Vec<u8> {
        let full = compress(codec, &sample(2_000)).unwrap_or_default();
        full[..full.len().min(24)].to_vec()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            codec in codec(),
            with_prefix in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cap in 0usize..4096,
        ) {
            let mut input = if with_prefix { prefix_of(codec) } else { Vec::new() };
            input.extend_from_slice(&bytes);
            if let Ok(out) = decompress(codec, &input, cap) {
                prop_assert!(out.len() <= cap);
            }
        }

        #[test]
        fn corrupted_streams_never_panic(
            codec in codec(),
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cap in 0usize..8192,
        ) {
            let mut packed = compress(codec, &data).expect("compress");
            if !packed.is_empty() {
                for (at, x) in flips {
                    let i = at % packed.len();
                    packed[i] ^= x;
                }
            }
            if let Ok(out) = decompress(codec, &packed, cap) {
                prop_assert!(out.len() <= cap);
            }
        }

        #[test]
        fn round_trip_with_cap(
            codec in codec(),
            data in proptest::collection::vec(0u8..4, 0..5000),
            slack in 0usize..3,
        ) {
            let packed = compress(codec, &data).expect("compress");
            let cap = data.len() + slack;
            prop_assert_eq!(decompress(codec, &packed, cap).expect("decompress"), data.clone());
            if !data.is_empty() {
                prop_assert_eq!(
                    decompress(codec, &packed, data.len() - 1),
                    Err(CompressionError::TooLarge { codec, limit: data.len() - 1 })
                );
            }
        }
    }
}
