//! Shared Key authentication: the string-to-sign of Azure Storage's "Authorize with
//! Shared Key" (version 2015-02-21 and later, Blob service) and its HMAC-SHA256 check.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use hyper::HeaderMap;
use sha2::Sha256;

/// The emulator's well-known account, as Azurite and `UseDevelopmentStorage=true` use it.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published key for [`DEV_ACCOUNT`].
pub const DEV_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Requests dated further than this from the server's clock are refused, as Azure does.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// Storage accounts: name -> decoded key.
#[derive(Clone, Debug)]
pub struct Accounts {
    keys: HashMap<String, Vec<u8>>,
}

impl Default for Accounts {
    /// Only the development account.
    fn default() -> Self {
        let mut accounts = Accounts::empty();
        accounts
            .insert(DEV_ACCOUNT, DEV_ACCOUNT_KEY)
            .expect("the well-known key is valid base64");
        accounts
    }
}

impl Accounts {
    /// No accounts at all: every request is refused until one is added.
    pub fn empty() -> Self {
        Accounts {
            keys: HashMap::new(),
        }
    }

    /// Adds (or replaces) an account whose key is given in base64, as connection strings
    /// carry it. Account names are 3 to 24 lowercase letters and digits.
    pub fn insert(&mut self, name: &str, key_base64: &str) -> Result<(), String> {
        let valid_name = (3..=24).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid_name {
            return Err(format!(
                "account name {name:?}: want 3-24 lowercase letters and digits"
            ));
        }
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_base64.trim())
            .map_err(|e| format!("account {name}: the key is not base64: {e}"))?;
        if key.is_empty() {
            return Err(format!("account {name}: empty key"));
        }
        self.keys.insert(name.to_string(), key);
        Ok(())
    }

    pub(crate) fn key(&self, name: &str) -> Option<&[u8]> {
        self.keys.get(name).map(Vec::as_slice)
    }

    /// Whether the account exists.
    pub fn contains(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }
}

/// Why a request was not authenticated (sent back as AuthenticationErrorDetail).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No Authorization header: Azure's 401 NoAuthenticationInformation.
    Missing,
    /// Anything else: 403 AuthenticationFailed with this detail.
    Failed(String),
}

/// Checks the request's `Authorization: SharedKey account:signature` for `account` (the
/// account named in the path).
pub(crate) fn verify(
    accounts: &Accounts,
    account: &str,
    method: &str,
    headers: &HeaderMap,
    raw_path: &str,
    raw_query: Option<&str>,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let Some(auth) = headers.get("authorization") else {
        return Err(AuthFailure::Missing);
    };
    let failed = |m: &str| AuthFailure::Failed(m.to_string());
    let auth = auth
        .to_str()
        .map_err(|_| failed("the Authorization header is not ASCII"))?;
    let credentials = auth
        .strip_prefix("SharedKey ")
        .ok_or_else(|| failed("only the SharedKey scheme is supported"))?;
    let (name, signature) = credentials
        .trim()
        .split_once(':')
        .ok_or_else(|| failed("the Authorization header is not 'SharedKey account:signature'"))?;
    if name != account {
        return Err(AuthFailure::Failed(format!(
            "the signature is for account {name:?}, the request is for {account:?}"
        )));
    }
    let key = accounts
        .key(account)
        .ok_or_else(|| AuthFailure::Failed(format!("no account named {account:?}")))?;
    check_date(headers, now)?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| failed("the signature is not base64"))?;
    let to_sign = string_to_sign(account, method, headers, raw_path, raw_query)
        .map_err(|e| AuthFailure::Failed(e.to_string()))?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| failed("unusable account key"))?;
    mac.update(to_sign.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature).map_err(|_| {
        AuthFailure::Failed(format!(
            "The MAC signature found in the HTTP request is not the same as any computed signature. Server used following string to sign: '{}'.",
            to_sign.replace('\n', "\\n")
        ))
    })
}

/// The signature's HMAC-SHA256 in base64, for tests and tools.
pub fn sign(key: &[u8], string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn check_date(headers: &HeaderMap, now: SystemTime) -> Result<(), AuthFailure> {
    let date = headers
        .get("x-ms-date")
        .or_else(|| headers.get("date"))
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthFailure::Failed("no x-ms-date or Date header".to_string()))?;
    let date = httpdate::parse_http_date(date)
        .map_err(|_| AuthFailure::Failed(format!("unparsable request date {date:?}")))?;
    let skew = match now.duration_since(date) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(AuthFailure::Failed(format!(
            "the request date is {} s away from the server's clock (at most 900 s)",
            skew.as_secs()
        )));
    }
    Ok(())
}

/// The Blob service's string-to-sign for Shared Key:
/// the verb, eleven standard headers, the canonicalized `x-ms-` headers and the
/// canonicalized resource (`/account` + the path as sent + the sorted, decoded query).
pub fn string_to_sign(
    account: &str,
    method: &str,
    headers: &HeaderMap,
    raw_path: &str,
    raw_query: Option<&str>,
) -> Result<String, &'static str> {
    let mut out = String::with_capacity(256);
    out.push_str(method);
    out.push('\n');
    for name in [
        "content-encoding",
        "content-language",
        "content-length",
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ] {
        let value = header_str(headers, name)?.unwrap_or("");
        // Since 2015-02-21 a zero Content-Length signs as empty.
        if !(name == "content-length" && value == "0") {
            out.push_str(value);
        }
        out.push('\n');
    }
    let mut ms: Vec<(String, &str)> = Vec::new();
    for name in headers.keys() {
        let lower = name.as_str().to_ascii_lowercase();
        if lower.starts_with("x-ms-") {
            let value = header_str(headers, name.as_str())?.unwrap_or("");
            ms.push((lower, value));
        }
    }
    ms.sort_by(|a, b| compare_header_names(&a.0, &b.0));
    for (name, value) in ms {
        out.push_str(&name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('/');
    out.push_str(account);
    out.push_str(if raw_path.is_empty() { "/" } else { raw_path });
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in query_pairs(raw_query.unwrap_or("")) {
        let name = name.to_lowercase();
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => params.push((name, vec![value])),
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut values) in params {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    Ok(out)
}

/// The first value of a header as text; a header that is not visible ASCII cannot be signed.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, &'static str> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| "a header that takes part in the signature is not ASCII"),
    }
}

/// Query pairs, percent-decoded ('+' stays '+', as the SDKs encode spaces as %20).
pub(crate) fn query_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode_lossy(n), percent_decode_lossy(v))
    })
}

pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn percent_decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode(s)).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The order the SDKs sort canonicalized header names in (Python's `_storage_header_sort`,
/// JS's `compareHeader`): a culture-invariant collation in which '-' and '\'' are ignored,
/// punctuation sorts before digits and digits before letters. Names equal under it (they
/// differ only in hyphens) fall back to byte order.
pub(crate) fn compare_header_names(a: &str, b: &str) -> Ordering {
    const ORDER: &[u8] = b"!#$%&*.^_`|~+0123456789abcdefghijklmnopqrstuvwxyz";
    let weights = |s: &str| -> Vec<usize> {
        s.bytes()
            .filter_map(|c| ORDER.iter().position(|o| *o == c.to_ascii_lowercase()))
            .collect()
    };
    weights(a).cmp(&weights(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const VECTOR_PATH: &str =
        "/devstoreaccount1/checkpoints/ns.servicebus.windows.net/hub/%24default/ownership/0";
    const VECTOR_QUERY: &str = "comp=metadata&timeout=30";

    /// A Set Blob Metadata request as azure-storage-blob 12.31.1 signs it.
    fn vector_headers() -> HeaderMap {
        headers(&[
            ("x-ms-version", "2019-07-07"),
            ("x-ms-date", "Thu, 03 Dec 2026 14:00:00 GMT"),
            ("x-ms-meta-ownerid", "owner-a"),
            (
                "x-ms-client-request-id",
                "1b2c3d4e-0000-1111-2222-333344445555",
            ),
            ("if-match", "\"0x8DD1234ABCD\""),
            ("content-length", "0"),
            ("x-ms-meta-a_b", "1"),
            ("x-ms-meta-ab", "2"),
            ("user-agent", "azsdk-python"),
        ])
    }

    /// Computed with azure-storage-blob 12.31.1's own SharedKeyCredentialPolicy
    /// (`_shared/authentication.py`) on the request above, key DEV_ACCOUNT_KEY.
    #[test]
    fn the_string_to_sign_matches_azure_storage_blob() {
        let sts = string_to_sign(
            DEV_ACCOUNT,
            "PUT",
            &vector_headers(),
            VECTOR_PATH,
            Some(VECTOR_QUERY),
        )
        .unwrap();
        assert_eq!(
            sts,
            "PUT\n\n\n\n\n\n\n\n\"0x8DD1234ABCD\"\n\n\n\n\
             x-ms-client-request-id:1b2c3d4e-0000-1111-2222-333344445555\n\
             x-ms-date:Thu, 03 Dec 2026 14:00:00 GMT\n\
             x-ms-meta-a_b:1\nx-ms-meta-ab:2\nx-ms-meta-ownerid:owner-a\n\
             x-ms-version:2019-07-07\n\
             /devstoreaccount1/devstoreaccount1/checkpoints/ns.servicebus.windows.net/hub/%24default/ownership/0\n\
             comp:metadata\ntimeout:30"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(DEV_ACCOUNT_KEY)
            .unwrap();
        assert_eq!(
            sign(&key, &sts),
            "Wv2H7n1LplzJrB0wk9qzXgmjTGxmiDIRImbgXPqQLEo="
        );
    }

    #[test]
    fn verify_accepts_the_sdk_signature_and_nothing_else() {
        let accounts = Accounts::default();
        let at = httpdate::parse_http_date("Thu, 03 Dec 2026 14:05:00 GMT").unwrap();
        let check = |auth: &str, now: SystemTime| {
            let mut h = vector_headers();
            h.insert("authorization", HeaderValue::from_str(auth).unwrap());
            verify(
                &accounts,
                DEV_ACCOUNT,
                "PUT",
                &h,
                VECTOR_PATH,
                Some(VECTOR_QUERY),
                now,
            )
        };
        let good = "SharedKey devstoreaccount1:Wv2H7n1LplzJrB0wk9qzXgmjTGxmiDIRImbgXPqQLEo=";
        assert_eq!(check(good, at), Ok(()));
        let bad = "SharedKey devstoreaccount1:Xv2H7n1LplzJrB0wk9qzXgmjTGxmiDIRImbgXPqQLEo=";
        assert!(matches!(check(bad, at), Err(AuthFailure::Failed(_))));
        assert!(matches!(
            check(
                "SharedKey otheraccount:Wv2H7n1LplzJrB0wk9qzXgmjTGxmiDIRImbgXPqQLEo=",
                at
            ),
            Err(AuthFailure::Failed(_))
        ));
        assert!(matches!(check("Bearer x", at), Err(AuthFailure::Failed(_))));
        assert!(matches!(
            check("SharedKey devstoreaccount1:!!", at),
            Err(AuthFailure::Failed(_))
        ));
        // 20 minutes after the request's date.
        let late = at + Duration::from_secs(15 * 60);
        assert!(matches!(check(good, late), Err(AuthFailure::Failed(_))));
        let mut h = vector_headers();
        h.remove("x-ms-date");
        assert_eq!(
            verify(&accounts, DEV_ACCOUNT, "PUT", &h, VECTOR_PATH, None, at),
            Err(AuthFailure::Missing)
        );
    }

    #[test]
    fn query_values_are_decoded_sorted_and_joined() {
        let sts = string_to_sign(
            "acct",
            "GET",
            &HeaderMap::new(),
            "/acct/c",
            Some("restype=container&comp=list&prefix=a%2Fb%20c&Include=metadata&include=copy"),
        )
        .unwrap();
        assert!(
            sts.ends_with(
                "/acct/acct/c\ncomp:list\ninclude:copy,metadata\nprefix:a/b c\nrestype:container"
            ),
            "{sts}"
        );
    }

    #[test]
    fn hyphens_are_ignored_when_sorting_header_names() {
        let mut names = vec![
            "x-ms-meta-a_b",
            "x-ms-meta-ab",
            "x-ms-meta-a-c",
            "x-ms-date",
        ];
        names.sort_by(|a, b| compare_header_names(a, b));
        // '_' sorts before letters; "a-c" compares as "ac".
        assert_eq!(
            names,
            [
                "x-ms-date",
                "x-ms-meta-a_b",
                "x-ms-meta-ab",
                "x-ms-meta-a-c"
            ]
        );
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), b"a/b%zz%4");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("%41"), b"A");
    }
}
