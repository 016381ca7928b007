//! The four record-batch codecs' decoders (`runnel_records::compression::decompress`),
//! as a produce request's or a stored batch's records section reaches them. The first
//! byte picks the codec (0 gzip, 1 snappy raw or xerial, 2 lz4 frame, 3 zstd), the rest
//! is the compressed data.
//!
//! Must never panic, never return more than the cap, and never hold much more memory
//! than the cap however large the data claims to be (a decompression bomb): a counting
//! allocator aborts (a libFuzzer crash) when live Rust heap memory during one call
//! passes the bound below. libzstd's own buffers are C allocations, which ASan's
//! `-malloc_limit_mb` watches instead.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use runnel_records::compression::{compress, decompress, CompressionError};
use runnel_records::record_batch::Compression;

/// The output cap used here: small, so bombs are cheap to find.
const CAP: usize = 256 * 1024;
/// What a call may hold beyond the cap: the output vector's doubling, lz4's two buffers
/// of its largest (4 MiB) block size, the input copy and small change.
const SLACK: usize = 2 * CAP + 10 * 1024 * 1024;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// 0: not checking; otherwise the live-bytes bound.
static LIMIT: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        track(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn track(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    let limit = LIMIT.load(Ordering::Relaxed);
    if limit != 0 && live > limit {
        // No formatting here (it would allocate): a fixed message, then a crash.
        const MSG: &[u8] = b"decompress: live heap past the bound (decompression bomb)\n";
        unsafe { libc_write(MSG) };
        std::process::abort();
    }
}

unsafe fn libc_write(msg: &[u8]) {
    extern "C" {
        fn write(fd: i32, buf: *const u8, count: usize) -> isize;
    }
    write(2, msg.as_ptr(), msg.len());
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let codec = CODECS[usize::from(selector) % CODECS.len()];
    LIMIT.store(LIVE.load(Ordering::Relaxed) + SLACK, Ordering::Relaxed);
    let result = decompress(codec, input, CAP);
    LIMIT.store(0, Ordering::Relaxed);
    match result {
        Ok(out) => {
            assert!(out.len() <= CAP, "{} bytes past the cap", out.len());
            // What decoded must encode and decode back to itself.
            let again = compress(codec, &out).expect("compress what decoded");
            assert_eq!(decompress(codec, &again, CAP).as_deref(), Ok(&out[..]));
        }
        Err(CompressionError::TooLarge { limit, .. }) => assert_eq!(limit, CAP),
        Err(CompressionError::Corrupt { .. }) => {}
        Err(e @ CompressionError::Compress { .. }) => panic!("decoding said {e}"),
    }
});
