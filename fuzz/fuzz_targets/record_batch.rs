//! Record batches as producers send them and as segments store them: header parsing,
//! CRC-32C and record-count validation, iteration over a record set, and the records
//! inside each batch (decompressed with a cap, as compaction and our client read them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_protocol::record_batch::{
    compute_crc, validate_batch, BatchHeader, BatchIter, Strictness,
};
use runnel_protocol::records::{batch_records, control_record_type};

/// The decompression cap for the records of one batch.
const MAX_DECOMPRESSED: usize = 1 << 20;

/// Byte offset of the CRC in a v2 batch header.
const CRC_OFFSET: usize = 17;

fuzz_target!(|data: &[u8]| {
    for strictness in [Strictness::Produce, Strictness::Stored] {
        check(data, strictness);
    }
    // Random bytes almost never carry a valid CRC-32C; fix it up so the checks behind
    // the CRC (record count against offset delta) are reached too.
    if let Ok(header) = BatchHeader::parse(data) {
        let mut batch = data[..header.total_len()].to_vec();
        let crc = compute_crc(&batch);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        for strictness in [Strictness::Produce, Strictness::Stored] {
            check(&batch, strictness);
        }
    }
});

fn check(data: &[u8], strictness: Strictness) {
    if let Ok(header) = validate_batch(data, strictness) {
        assert!(header.total_len() <= data.len());
    }
    // Batches are whole, contiguous and inside the buffer; iteration stops at the
    // first error.
    let mut next = 0;
    let mut failed = false;
    for item in BatchIter::new(data, strictness) {
        assert!(!failed, "no item after an error");
        match item {
            Ok((position, header)) => {
                assert_eq!(position, next);
                next = position + header.total_len();
                assert!(next <= data.len());
                records(&data[position..next]);
            }
            Err((position, _)) => {
                assert_eq!(position, next);
                failed = true;
            }
        }
    }
}

/// The records of one whole batch: at most the declared count, each inside the section.
fn records(batch: &[u8]) {
    let _ = control_record_type(batch);
    let Ok(decoded) = batch_records(batch, MAX_DECOMPRESSED) else {
        return;
    };
    assert!(decoded.section().len() <= MAX_DECOMPRESSED.max(batch.len()));
    let mut count = 0;
    for record in decoded.records() {
        let Ok(record) = record else {
            break;
        };
        count += 1;
        let _ = (decoded.offset(&record), decoded.timestamp(&record));
        // Headers were checked when the record was decoded.
        for (key, value) in record.headers() {
            assert!(key.len() + value.map_or(0, <[u8]>::len) <= record.raw().len());
        }
    }
    assert!(count <= decoded.len());
}
