//! Hostile input on the Event Hubs AMQP port: garbage, broken frames, floods and idle
//! sockets. Each case asserts what the broker does (an AMQP error or a closed
//! connection), and at the end the broker is alive, logged no panic, and still serves
//! Kafka and a correct AMQP exchange.
//!
//! The few frames needed are encoded by hand with the small AMQP 1.0 encoders below
//! (§1.6 primitive types, §2.3 framing), so a frame can be broken on purpose.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use runnel_protocol::api::messages as m;
use runnel_protocol::api::{ApiKey, ResponseBody};
use runnel_suite::raw::RawClient;
use runnel_suite::TestBroker;

// ---------------------------------------------------------------------------------------
// AMQP encoding (just what the frames below use)
// ---------------------------------------------------------------------------------------

const SASL_HEADER: &[u8; 8] = b"AMQP\x03\x01\x00\x00";
const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";

/// Frame types (§2.3.1, §5.3.1).
const AMQP_FRAME: u8 = 0;
const SASL_FRAME: u8 = 1;

/// Descriptor codes of the performatives and SASL frames (smallulong form).
const SASL_MECHANISMS: u8 = 0x40;
const SASL_INIT: u8 = 0x41;
const SASL_OUTCOME: u8 = 0x44;
const OPEN: u8 = 0x10;
const BEGIN: u8 = 0x11;
const ATTACH: u8 = 0x12;
const END: u8 = 0x17;
const CLOSE: u8 = 0x18;

/// The broker's limits (amqp/src/lib.rs and server.rs).
const MAX_FRAME_SIZE: u32 = 65_536;
const CHANNEL_MAX: u16 = 255;

fn null() -> Vec<u8> {
    vec![0x40]
}

fn boolean(v: bool) -> Vec<u8> {
    vec![if v { 0x41 } else { 0x42 }]
}

fn uint(v: u32) -> Vec<u8> {
    let mut out = vec![0x70];
    out.extend_from_slice(&v.to_be_bytes());
    out
}

fn ushort(v: u16) -> Vec<u8> {
    let mut out = vec![0x60];
    out.extend_from_slice(&v.to_be_bytes());
    out
}

/// str8-utf8 (0xa1) or str32-utf8 (0xb1).
fn string(s: &str) -> Vec<u8> {
    variable(0xa1, 0xb1, s.as_bytes())
}

/// sym8 (0xa3).
fn symbol(s: &str) -> Vec<u8> {
    variable(0xa3, 0xb3, s.as_bytes())
}

/// vbin8 (0xa0) or vbin32 (0xb0).
fn binary(b: &[u8]) -> Vec<u8> {
    variable(0xa0, 0xb0, b)
}

fn variable(code8: u8, code32: u8, b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 5);
    match u8::try_from(b.len()) {
        Ok(n) => out.extend_from_slice(&[code8, n]),
        Err(_) => {
            out.push(code32);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(b);
    out
}

/// list8 (0xc0 size count items) or list32 (0xd0), size counting the count too.
fn list(items: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = items.concat();
    let mut out = Vec::new();
    match u8::try_from(body.len() + 1) {
        Ok(size) if items.len() < 256 => out.extend_from_slice(&[0xc0, size, items.len() as u8]),
        _ => {
            out.push(0xd0);
            out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(&body);
    out
}

/// A described list: 0x00, the smallulong descriptor (0x53 code), the fields.
fn described(code: u8, fields: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0x00, 0x53, code];
    out.extend_from_slice(&list(fields));
    out
}

/// A frame (§2.3.1): size (u32, the whole frame), doff 2 (8-byte header), type,
/// channel, then the body.
fn frame(ftype: u8, channel: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
    out.extend_from_slice(&[2, ftype]);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// sasl-init (0x41): mechanism, initial-response.
fn sasl_init(mechanism: &str, response: Option<&[u8]>) -> Vec<u8> {
    let mut fields = vec![symbol(mechanism)];
    if let Some(r) = response {
        fields.push(binary(r));
    }
    frame(SASL_FRAME, 0, &described(SASL_INIT, &fields))
}

/// open (0x10): container-id, hostname, max-frame-size, channel-max.
fn open() -> Vec<u8> {
    let fields = [
        string("hostile-client"),
        string("localhost"),
        uint(MAX_FRAME_SIZE),
        ushort(u16::MAX),
    ];
    frame(AMQP_FRAME, 0, &described(OPEN, &fields))
}

/// begin (0x11): remote-channel null (we start it), next-outgoing-id,
/// incoming-window, outgoing-window.
fn begin(channel: u16) -> Vec<u8> {
    let fields = [null(), uint(0), uint(2048), uint(2048)];
    frame(AMQP_FRAME, channel, &described(BEGIN, &fields))
}

/// attach (0x12): name, handle, role (true = receiver), snd-settle-mode,
/// rcv-settle-mode, source (0x28: address), target (0x29: address). A receiver on a
/// hub that does not exist: the broker attaches and detaches it with amqp:not-found.
fn attach(channel: u16, handle: u32) -> Vec<u8> {
    let source = described(
        0x28,
        &[string("no-such-hub/ConsumerGroups/$default/Partitions/0")],
    );
    let target = described(0x29, &[string("hostile-receiver")]);
    let fields = [
        string(&format!("link-{handle}")),
        uint(handle),
        boolean(true),
        null(),
        null(),
        source,
        target,
    ];
    frame(AMQP_FRAME, channel, &described(ATTACH, &fields))
}

// ---------------------------------------------------------------------------------------
// Reading what the broker sends
// ---------------------------------------------------------------------------------------

/// Everything the broker sent until it closed the connection (or `timeout` passed).
#[derive(Debug)]
struct Seen {
    /// Protocol headers, in order.
    headers: Vec<[u8; 8]>,
    /// `(frame type, descriptor code)` of each frame, in order.
    frames: Vec<(u8, u8)>,
    /// The broker closed the connection (EOF or reset) within the timeout.
    closed: bool,
    /// The code of the sasl-outcome frame, if one came.
    sasl_code: Option<u8>,
    /// The printable bytes of the last Close or End (its error condition and text).
    error_text: Option<String>,
}

impl Seen {
    fn has(&self, ftype: u8, code: u8) -> bool {
        self.frames.contains(&(ftype, code))
    }
}

/// Read until EOF, a reset or `timeout`, and parse headers and frames.
fn read_all(s: &mut TcpStream, timeout: Duration) -> Seen {
    read_until_any(s, timeout, &[])
}

/// Like [`read_all`], but stop early once one of `stop` (frame type, code) arrives.
fn read_until_any(s: &mut TcpStream, timeout: Duration, stop: &[(u8, u8)]) -> Seen {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut closed = false;
    let mut chunk = [0u8; 16 * 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = s.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match s.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if !stop.is_empty() && parse(&buf, false).frames.iter().any(|f| stop.contains(f)) {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ECONNRESET and friends: the broker dropped the connection.
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    parse(&buf, closed)
}

/// Read frames until `want` (a frame type and code) arrives; panics after 10 s.
fn read_until(s: &mut TcpStream, want: (u8, u8), what: &str) -> Seen {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let seen = parse(&buf, false);
        if seen.frames.contains(&want) {
            return seen;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("{what}: no {want:?} within 10 s; saw {seen:?}"));
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut chunk) {
            Ok(0) => panic!("{what}: the broker closed the connection; saw {seen:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("{what}: {e}; saw {seen:?}"),
        }
    }
}

fn parse(buf: &[u8], closed: bool) -> Seen {
    let mut seen = Seen {
        headers: Vec::new(),
        frames: Vec::new(),
        closed,
        sasl_code: None,
        error_text: None,
    };
    let mut at = 0;
    while buf.len() >= at + 8 {
        if &buf[at..at + 4] == b"AMQP" {
            let mut h = [0u8; 8];
            h.copy_from_slice(&buf[at..at + 8]);
            seen.headers.push(h);
            at += 8;
            continue;
        }
        let size = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        let doff = buf[at + 4] as usize * 4;
        if size < 8 || doff < 8 || doff > size || buf.len() < at + size {
            break;
        }
        let body = &buf[at + doff..at + size];
        // An empty body is a heartbeat.
        if body.len() >= 3 && body[0] == 0x00 && body[1] == 0x53 {
            seen.frames.push((buf[at + 5], body[2]));
            if buf[at + 5] == AMQP_FRAME && matches!(body[2], CLOSE | END) {
                let text: String = body[3..]
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            b as char
                        } else {
                            '.'
                        }
                    })
                    .collect();
                seen.error_text = Some(text);
            }
            if body[2] == SASL_OUTCOME {
                // 00 53 44, a list (c0 size count or 45 for an empty one), code 50 XX.
                seen.sasl_code = body.windows(2).find(|w| w[0] == 0x50).map(|w| w[1]);
            }
        }
        at += size;
    }
    seen
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the AMQP port");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Send `bytes` and return what the broker does within `timeout`. A write error is
/// fine: the broker may close before reading everything.
fn send_and_read(addr: SocketAddr, bytes: &[u8], shutdown: bool, timeout: Duration) -> Seen {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    if shutdown {
        let _ = s.shutdown(Shutdown::Write);
    }
    read_all(&mut s, timeout)
}

/// SASL ANONYMOUS and the AMQP header on a new connection; panics unless both work.
fn sasl_anonymous(addr: SocketAddr) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(SASL_HEADER).expect("write SASL header");
    read_until(&mut s, (SASL_FRAME, SASL_MECHANISMS), "SASL header");
    s.write_all(&sasl_init("ANONYMOUS", None))
        .expect("write sasl-init");
    let seen = read_until(&mut s, (SASL_FRAME, SASL_OUTCOME), "sasl-init");
    assert_eq!(seen.sasl_code, Some(0), "ANONYMOUS outcome: {seen:?}");
    s.write_all(AMQP_HEADER).expect("write AMQP header");
    s
}

/// SASL, header and Open: a connection ready for sessions.
fn opened(addr: SocketAddr) -> TcpStream {
    let mut s = sasl_anonymous(addr);
    s.write_all(&open()).expect("write open");
    let seen = read_until(&mut s, (AMQP_FRAME, OPEN), "open");
    assert!(!seen.has(AMQP_FRAME, CLOSE), "{seen:?}");
    s
}

/// A case ends with a closed connection (and, if it says one, an AMQP error).
fn assert_ends(case: &str, seen: &Seen) {
    assert!(
        seen.closed,
        "{case}: the broker did not close the connection: {seen:?}"
    );
    assert!(
        seen.sasl_code.is_none_or(|c| c != 0),
        "{case}: SASL succeeded: {seen:?}"
    );
}

fn assert_no_panic(broker: &TestBroker, after: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("amqp_hostile: done: {after} ({:?})", start.elapsed());
    let log = broker.stderr_log();
    assert!(
        !log.contains("panicked"),
        "the broker panicked after {after}:\n{}",
        broker.diagnostics()
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

const CASE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

/// 1. Not AMQP at all: the broker answers (at most) with its own header and closes.
fn garbage_instead_of_the_header(addr: SocketAddr) {
    let mut random = Vec::with_capacity(256);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..256 {
        // xorshift: arbitrary but repeatable bytes.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x as u8);
    }
    let http = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: hostile\r\n\r\n".to_vec();
    // A TLS 1.2 record (handshake, ClientHello) cut short after its random.
    let mut tls = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
    ];
    tls.extend_from_slice(&[0x42; 32]);
    tls.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    for (name, bytes) in [
        ("random bytes", random),
        ("HTTP", http),
        ("TLS ClientHello", tls),
    ] {
        let seen = send_and_read(addr, &bytes, false, CASE_TIMEOUT);
        assert_ends(name, &seen);
        assert!(seen.frames.is_empty(), "{name}: {seen:?}");
    }
}

/// 2. A good SASL header, then bad SASL frames.
fn bad_sasl_frames(addr: SocketAddr) {
    let mut cases: Vec<(&str, Vec<u8>, bool)> = Vec::new();
    let mut garbage = SASL_HEADER.to_vec();
    garbage.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x00, 0xff, 0x01, 0x02]);
    cases.push(("SASL header then garbage", garbage, false));

    let init = sasl_init("ANONYMOUS", None);
    let mut truncated = SASL_HEADER.to_vec();
    truncated.extend_from_slice(&init[..init.len() - 5]);
    cases.push(("truncated sasl-init, then EOF", truncated, true));

    let mut huge = SASL_HEADER.to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 2, SASL_FRAME, 0, 0]);
    huge.extend_from_slice(&init[8..]);
    cases.push(("SASL frame of 4 GiB", huge, false));

    // Before Open the largest frame is 512 bytes (§2.4.1, MIN-MAX-FRAME-SIZE).
    let mut big = SASL_HEADER.to_vec();
    big.extend_from_slice(&sasl_init("PLAIN", Some(&[b'x'; 600])));
    cases.push(("sasl-init over 512 bytes", big, false));

    for size in [0u32, 3, 4, 6, 7] {
        let mut short = SASL_HEADER.to_vec();
        short.extend_from_slice(&size.to_be_bytes());
        short.extend_from_slice(&[2, SASL_FRAME, 0, 0, 0, 0, 0, 0]);
        cases.push((
            match size {
                0 => "SASL frame size 0",
                3 => "SASL frame size 3",
                4 => "SASL frame size 4",
                6 => "SASL frame size 6",
                _ => "SASL frame size 7",
            },
            short,
            false,
        ));
    }

    for (name, bytes, shutdown) in cases {
        let seen = send_and_read(addr, &bytes, shutdown, CASE_TIMEOUT);
        assert_ends(name, &seen);
        // The header comes back; sasl-mechanisms may not, when the bad frame arrives
        // in the same read as the header.
        assert_eq!(seen.headers.first(), Some(SASL_HEADER), "{name}: {seen:?}");
        assert!(!seen.has(SASL_FRAME, SASL_OUTCOME), "{name}: {seen:?}");
    }
}

/// 3. After SASL and the AMQP header, bad AMQP frames.
fn bad_amqp_frames(addr: SocketAddr) {
    // An Open padded past the broker's max-frame-size (and past 512, the limit before
    // Open): its hostname is 70,000 bytes.
    {
        let fields = [string("hostile"), string(&"h".repeat(70_000))];
        let big_open = frame(AMQP_FRAME, 0, &described(OPEN, &fields));
        assert!(big_open.len() > MAX_FRAME_SIZE as usize);
        let mut s = sasl_anonymous(addr);
        let _ = s.write_all(&big_open);
        let seen = read_all(&mut s, CASE_TIMEOUT);
        assert_ends("Open over 65536 bytes", &seen);
        // AMQP's way to refuse before Open (§2.4.5): an Open, then a Close.
        assert!(
            !seen.has(AMQP_FRAME, OPEN) || seen.has(AMQP_FRAME, CLOSE),
            "{seen:?}"
        );
    }
    // A frame over max-frame-size after the Open exchange: the size field says 70,000.
    {
        let mut s = opened(addr);
        let mut big = (MAX_FRAME_SIZE + 4464).to_be_bytes().to_vec();
        big.extend_from_slice(&[2, AMQP_FRAME, 0, 0]);
        big.extend_from_slice(&vec![0x40; 1024]);
        let _ = s.write_all(&big);
        let seen = read_all(&mut s, CASE_TIMEOUT);
        assert_ends("frame over 65536 after Open", &seen);
    }
    // A truncated Open, then EOF.
    {
        let mut s = sasl_anonymous(addr);
        let o = open();
        let _ = s.write_all(&o[..o.len() / 2]);
        let _ = s.shutdown(Shutdown::Write);
        let seen = read_all(&mut s, CASE_TIMEOUT);
        assert_ends("truncated Open, then EOF", &seen);
    }
    // A truncated Begin after Open, then EOF.
    {
        let mut s = opened(addr);
        let b = begin(0);
        let _ = s.write_all(&b[..b.len() - 3]);
        let _ = s.shutdown(Shutdown::Write);
        let seen = read_all(&mut s, CASE_TIMEOUT);
        assert_ends("truncated Begin, then EOF", &seen);
    }
    // Frame sizes below the 8-byte frame header, before and after Open.
    for size in [0u32, 4, 5, 6, 7] {
        for after_open in [false, true] {
            let mut s = if after_open {
                opened(addr)
            } else {
                sasl_anonymous(addr)
            };
            let mut short = size.to_be_bytes().to_vec();
            short.extend_from_slice(&[2, AMQP_FRAME, 0, 0, 0, 0, 0, 0]);
            let _ = s.write_all(&short);
            let seen = read_all(&mut s, CASE_TIMEOUT);
            assert_ends(
                &format!("AMQP frame size {size} (after Open: {after_open})"),
                &seen,
            );
        }
    }
}

/// 4a. More sessions than channel-max on one connection, one at a time: the broker
/// begins at most channel-max + 1 and then ends the connection.
fn sessions_over_channel_max(addr: SocketAddr) {
    let mut s = opened(addr);
    let mut begun = 0;
    let mut last = None;
    for channel in 0..300u16 {
        if s.write_all(&begin(channel)).is_err() {
            break;
        }
        let seen = read_until_any(
            &mut s,
            CASE_TIMEOUT,
            &[(AMQP_FRAME, BEGIN), (AMQP_FRAME, CLOSE)],
        );
        let ended = seen.closed || seen.has(AMQP_FRAME, CLOSE);
        if seen.has(AMQP_FRAME, BEGIN) {
            begun += 1;
        }
        last = Some(seen);
        if ended {
            break;
        }
    }
    let last = last.expect("one Begin sent");
    eprintln!(
        "amqp_hostile: Begins one at a time: {begun} begun, then Close {} ({:?}), closed {}",
        last.has(AMQP_FRAME, CLOSE),
        last.error_text,
        last.closed
    );
    assert!(
        begun <= CHANNEL_MAX as usize + 1,
        "{begun} sessions began on one connection"
    );
    assert!(
        last.closed || last.has(AMQP_FRAME, CLOSE),
        "300 Begins one at a time: no Close: {last:?}"
    );
}

/// 4a. 300 Begins at once: ended with an error.
fn session_flood(addr: SocketAddr) {
    let mut s = opened(addr);
    let mut frames = Vec::new();
    for channel in 0..300u16 {
        frames.extend_from_slice(&begin(channel));
    }
    let _ = s.write_all(&frames);
    let seen = read_until_any(&mut s, Duration::from_secs(20), &[(AMQP_FRAME, CLOSE)]);
    let begins = seen
        .frames
        .iter()
        .filter(|f| **f == (AMQP_FRAME, BEGIN))
        .count();
    eprintln!(
        "amqp_hostile: 300 Begins at once: {begins} Begins back, Close {} ({:?}), closed {}",
        seen.has(AMQP_FRAME, CLOSE),
        seen.error_text,
        seen.closed
    );
    assert!(
        begins <= CHANNEL_MAX as usize + 1,
        "{begins} sessions began on one connection"
    );
    assert!(
        seen.closed || seen.has(AMQP_FRAME, CLOSE),
        "300 Begins: the broker neither closed nor sent Close ({begins} Begins back): {:?}",
        &seen.frames[seen.frames.len().saturating_sub(5)..]
    );
}

/// 4b. More links than handle-max on one session: ended with an error.
fn attach_flood(addr: SocketAddr) {
    let mut s = opened(addr);
    s.write_all(&begin(0)).expect("begin");
    read_until(&mut s, (AMQP_FRAME, BEGIN), "begin");
    let mut frames = Vec::new();
    for handle in 0..1000u32 {
        frames.extend_from_slice(&attach(0, handle));
    }
    // A writer thread: the broker may stop reading while we still write.
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&frames);
    });
    let stop = [(AMQP_FRAME, END), (AMQP_FRAME, CLOSE)];
    let seen = read_until_any(&mut s, Duration::from_secs(30), &stop);
    let _ = s.shutdown(Shutdown::Both);
    let _ = writer.join();
    let attaches = seen
        .frames
        .iter()
        .filter(|f| **f == (AMQP_FRAME, ATTACH))
        .count();
    eprintln!(
        "amqp_hostile: 1000 Attaches: {attaches} Attaches back, End {} ({:?}), Close {}, closed {}",
        seen.has(AMQP_FRAME, END),
        seen.error_text,
        seen.has(AMQP_FRAME, CLOSE),
        seen.closed
    );
    assert!(attaches <= 256, "{attaches} links attached on one session");
    assert!(
        seen.closed || seen.has(AMQP_FRAME, CLOSE) || seen.has(AMQP_FRAME, END),
        "1000 Attaches: no End, Close or closed connection ({attaches} Attaches back): {:?}",
        &seen.frames[seen.frames.len().saturating_sub(5)..]
    );
}

/// 5a. Connections opened and closed in a tight loop.
fn connection_churn(addr: SocketAddr) {
    for i in 0..200 {
        let mut s = connect(addr);
        if i % 2 == 1 {
            let _ = s.write_all(SASL_HEADER);
        }
        drop(s);
    }
}

#[test]
fn hostile_input_on_the_amqp_port() {
    let broker = TestBroker::start();
    let addr = broker.amqp_addr();
    assert_no_panic(&broker, "the start");

    // 5b. Idle sockets, opened first so that their 30 s open timeout runs while the
    // other cases do: 50 that send nothing, and one stuck in a half-sent SASL frame.
    let idle_since = Instant::now();
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(addr)).collect();
    let mut stuck = connect(addr);
    stuck.write_all(SASL_HEADER).expect("SASL header");
    stuck
        .write_all(&sasl_init("ANONYMOUS", None)[..6])
        .expect("half a frame");
    idle.push(stuck);

    garbage_instead_of_the_header(addr);
    assert_no_panic(&broker, "garbage instead of the header");
    bad_sasl_frames(addr);
    assert_no_panic(&broker, "bad SASL frames");
    bad_amqp_frames(addr);
    assert_no_panic(&broker, "bad AMQP frames");

    let rss_before = rss_kib(broker.pid());
    sessions_over_channel_max(addr);
    assert_no_panic(&broker, "300 sessions one at a time");
    session_flood(addr);
    assert_no_panic(&broker, "300 sessions at once");
    attach_flood(addr);
    assert_no_panic(&broker, "1000 attaches");
    connection_churn(addr);
    assert_no_panic(&broker, "200 connections opened and closed");
    let rss_after = rss_kib(broker.pid());
    eprintln!("amqp_hostile: broker RSS {rss_before} KiB before the floods, {rss_after} KiB after");
    // A safety bound against unbounded growth, not a measure of efficiency.
    assert!(
        rss_after < rss_before + 200 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The idle ones close by the open timeout (30 s), well within 40 s.
    let deadline = idle_since + Duration::from_secs(40);
    for (i, s) in idle.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = read_all(s, left.max(Duration::from_millis(10)));
        assert!(
            seen.closed,
            "idle connection {i} still open after {:?}: {seen:?}",
            idle_since.elapsed()
        );
    }

    // 6. Still alive, no panic, and both ports serve.
    let mut broker = broker;
    assert!(broker.is_running(), "the broker exited");
    assert_no_panic(&broker, "all cases");
    let mut kafka = RawClient::connect(broker.addr());
    match kafka.call(ApiKey::Metadata, 12, m::MetadataRequest::default().into()) {
        Some(ResponseBody::Metadata(md)) => assert_eq!(md.brokers.len(), 1, "{md:?}"),
        other => panic!("Metadata on the Kafka port: {other:?}"),
    }
    let mut s = opened(addr);
    s.write_all(&frame(AMQP_FRAME, 0, &described(CLOSE, &[])))
        .expect("close");
    let seen = read_until(&mut s, (AMQP_FRAME, CLOSE), "close");
    assert!(seen.has(AMQP_FRAME, CLOSE));
    assert_no_panic(&broker, "the final checks");
}
