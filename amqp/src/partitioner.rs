//! Event Hubs' routing of a partition key to a partition.
//!
//! The service hashes the key's UTF-8 bytes with Bob Jenkins' lookup3 `hashlittle2`
//! (seeds 0 and 0), folds the two 32-bit results into an `i16` and takes the absolute
//! value of the truncated remainder. The .NET SDK (`src/Core/PartitionResolver.cs` in
//! Azure.Messaging.EventHubs) calls its copy "a direct port of the Event Hubs service
//! code"; its test vectors are the ones below. This is a fresh implementation of the
//! published algorithm, checked against those vectors.
//!
//! Python's port (`_buffered_producer/_partition_resolver.py`) differs twice: it uses a
//! floored `%`, so for negative hashes it picks another partition (for `"7"` and 8
//! partitions it gives 1, .NET 7), and it hashes code points instead of UTF-8 bytes, so
//! non-ASCII keys hash differently. Runnel follows .NET, the port of the service; the JS
//! SDK's port agrees with it.
//!
//! Kafka clients route keys with murmur2, so the same string lands on different
//! partitions under the two protocols, as it does on Event Hubs itself.

/// The `i16` hash Event Hubs derives from a partition key.
pub fn key_hash(key: &str) -> i16 {
    let (hash1, hash2) = hashlittle2(key.as_bytes(), 0, 0);
    // Truncation to the low 16 bits, as the service's `(short)` cast does.
    (hash1 ^ hash2) as i16
}

/// The partition (0-based) Event Hubs routes `key` to among `partitions` partitions.
/// `partitions` must be at least 1; 0 yields 0 rather than a division by zero.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    // In i64 so that neither the remainder nor its absolute value can overflow; Rust's
    // `%` truncates toward zero, as C#'s does.
    let remainder = i64::from(key_hash(key)) % i64::from(partitions);
    // |remainder| < partitions <= u32::MAX, so the conversion cannot fail.
    u32::try_from(remainder.unsigned_abs()).unwrap_or(0)
}

/// lookup3's `hashlittle2`: the primary hash (`c`) and the secondary (`b`), reading the
/// input as little-endian 32-bit words whatever the host's byte order.
fn hashlittle2(data: &[u8], seed1: u32, seed2: u32) -> (u32, u32) {
    // lookup3 mixes the length in as a u32; longer keys wrap as the C code's would.
    let mut a = 0xdead_beef_u32
        .wrapping_add(data.len() as u32)
        .wrapping_add(seed1);
    let mut b = a;
    let mut c = a.wrapping_add(seed2);

    if data.is_empty() {
        return (c, b);
    }

    // Every full 12-byte block but the last is mixed; the last 1..=12 bytes go to the
    // final round.
    let mut rest = data;
    while rest.len() > 12 {
        a = a.wrapping_add(word(rest, 0));
        b = b.wrapping_add(word(rest, 4));
        c = c.wrapping_add(word(rest, 8));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }

    // The tail, zero-padded to 12 bytes, is the same as adding its partial words.
    let mut tail = [0u8; 12];
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(word(&tail, 0));
    b = b.wrapping_add(word(&tail, 4));
    c = c.wrapping_add(word(&tail, 8));
    final_mix(&mut a, &mut b, &mut c);
    (c, b)
}

/// The little-endian u32 at `at`; callers guarantee 4 bytes are there.
fn word(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w)
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vector of `PartitionHashTestCases` in the .NET SDK's
    /// `tests/Core/PartitionResolverTests.cs` (Azure/azure-sdk-for-net).
    const NET_VECTORS: &[(&str, i16)] = &[
        ("7", -15263),
        ("131", 30562),
        ("7149583486996073602", 12977),
        ("FWfAT", -22341),
        ("sOdeEAsyQoEuEFPGerWO", -6503),
        (
            "FAyAIctPeCgmiwLKbJcyswoHglHVjQdvtBowLACDNORsYvOcLddNJYDmhAVkbyLOrHTKLneMNcbgWVlasVywOByANjs",
            5226,
        ),
        (
            "1XYM6!(7(lF5wq4k4m*e$Nc!1ezLJv*1YK1Y-C^*&B$O)lq^iUkG(TNzXG;Zi#z2Og*Qq0#^*k):vXh$3,C7We7%W0meJ;b3,rQCg^J;^twXgs5E$$hWKxqp",
            23950,
        ),
        (
            "E(x;RRIaQcJs*P;D&jTPau-4K04oqr:lF6Z):ERpo&;9040qyV@G1_c9mgOs-8_8/10Fwa-7b7-yP!T-!IH&968)FWuI;(^g$2fN;)HJ^^yTn:",
            -29304,
        ),
        ("!c*_!I@1^c", 15372),
        ("p4*!jioeO/z-!-;w:dh", -3104),
        ("$0cb", 26269),
        ("-4189260826195535198", 453),
    ];

    #[test]
    fn hashes_match_the_net_sdk_vectors() {
        for &(key, expected) in NET_VECTORS {
            assert_eq!(key_hash(key), expected, "key {key:?}");
        }
    }

    /// Hashes printed by @azure/event-hubs 6.0.4's independent port
    /// (`impl/partitionKeyToIdMapper.js`, `hashPartitionKey`) for keys the .NET vectors
    /// miss: block boundaries (12, 13 and 24 bytes), multi-byte UTF-8 and the key the .NET
    /// stability test uses. The Python SDK agrees on the ASCII ones; it hashes code points
    /// rather than UTF-8 bytes, so it gives -1243 for "é" (see the module docs).
    #[test]
    fn hashes_match_the_js_sdk_port() {
        let cases: &[(&str, i16)] = &[
            ("", 0),
            ("é", -24812),
            ("日本語のキー", 18957),
            ("😀 emoji key", -27072),
            ("this-is-a-key-1", 26223),
            ("abcdefghijkl", -2373),
            ("abcdefghijklmnopqrstuvwx", 26788),
            ("xxxxxxxxxxxxx", 3742),
        ];
        for &(key, expected) in cases {
            assert_eq!(key_hash(key), expected, "key {key:?}");
        }
    }

    #[test]
    fn vectors_cover_every_tail_length_and_multi_block_keys() {
        // The vectors exercise the tail switch and the block loop, so a slip in either
        // fails the test above rather than going unnoticed.
        let tails: std::collections::BTreeSet<usize> = NET_VECTORS
            .iter()
            .map(|(k, _)| (k.len() - 1) % 12 + 1)
            .collect();
        assert!(tails.len() >= 6, "tail lengths covered: {tails:?}");
        assert!(NET_VECTORS.iter().any(|(k, _)| k.len() > 24));
    }

    /// Partitions printed by @azure/event-hubs 6.0.4's `mapPartitionKeyToId(key, n)`
    /// (`Math.abs(hash % n)`, JS's truncated remainder, as C#'s) for the partition counts
    /// the .NET tests use: 1..=7, 8, 16, 32 and 2000.
    #[test]
    fn partitions_match_the_js_sdk() {
        const COUNTS: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 2000];
        let table: &[(&str, [u32; 11])] = &[
            ("7", [0, 1, 2, 3, 3, 5, 3, 7, 15, 31, 1263]),
            ("131", [0, 0, 1, 2, 2, 4, 0, 2, 2, 2, 562]),
            ("FWfAT", [0, 1, 0, 1, 1, 3, 4, 5, 5, 5, 341]),
            ("$0cb", [0, 1, 1, 1, 4, 1, 5, 5, 13, 29, 269]),
            ("", [0; 11]),
            ("é", [0, 0, 2, 0, 2, 2, 4, 4, 12, 12, 812]),
            ("this-is-a-key-1", [0, 1, 0, 3, 3, 3, 1, 7, 15, 15, 223]),
            ("abcdefghijkl", [0, 1, 0, 1, 3, 3, 0, 5, 5, 5, 373]),
            (
                "abcdefghijklmnopqrstuvwx",
                [0, 0, 1, 0, 3, 4, 6, 4, 4, 4, 788],
            ),
            ("日本語のキー", [0, 1, 0, 1, 2, 3, 1, 5, 13, 13, 957]),
            ("xxxxxxxxxxxxx", [0, 0, 1, 2, 2, 4, 4, 6, 14, 30, 1742]),
            ("😀 emoji key", [0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 1072]),
        ];
        for (key, expected) in table {
            for (&n, &want) in COUNTS.iter().zip(expected) {
                assert_eq!(
                    partition_for_key(key, n),
                    want,
                    "key {key:?}, {n} partitions"
                );
            }
        }
    }

    #[test]
    fn python_floored_remainder_differs_for_negative_hashes() {
        // Python: -15263 % 8 == 1; .NET and the service: |-15263 rem 8| == 7.
        assert_eq!(key_hash("7").rem_euclid(8), 1);
        assert_eq!(partition_for_key("7", 8), 7);
    }

    #[test]
    fn empty_key_and_extremes_do_not_panic() {
        // hashlittle2 of no bytes returns the initial state: c = b = 0xdeadbeef.
        assert_eq!(key_hash(""), 0);
        assert_eq!(partition_for_key("", 3), 0);
        assert_eq!(partition_for_key("7", 0), 0);
        assert_eq!(partition_for_key("7", u32::MAX), 15263);
        let long = "k".repeat(100_000);
        assert!(partition_for_key(&long, 32) < 32);
    }

    #[test]
    fn non_ascii_keys_hash_their_utf8_bytes() {
        // The hash sees UTF-8 bytes: "é" is the two bytes C3 A9, so it hashes as the
        // two-character string "Ã©" would if that were encoded as Latin-1.
        let (h1, h2) = hashlittle2(&[0xc3, 0xa9], 0, 0);
        assert_eq!(key_hash("é"), (h1 ^ h2) as i16);
        assert_ne!(key_hash("é"), key_hash("Ã©"));
    }

    proptest::proptest! {
        #[test]
        fn partition_is_in_range_and_stable(key in ".{0,64}", n in 1u32..5000) {
            let p = partition_for_key(&key, n);
            proptest::prop_assert!(p < n);
            proptest::prop_assert_eq!(p, partition_for_key(&key, n));
            let h = i64::from(key_hash(&key));
            proptest::prop_assert_eq!(i64::from(p), (h % i64::from(n)).abs());
        }
    }
}
