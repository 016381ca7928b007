//! HTTP/1.1 over hyper: routing, conditional headers, responses and Azure's XML errors.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::auth::{self, AuthFailure};
use crate::store::{BlobMeta, NewBlob, Props, Store};
use crate::{Accounts, Limits};

/// The version answered when a request names none.
const DEFAULT_VERSION: &str = "2021-12-02";
const MAX_RESULTS: usize = 5000;
const MAX_METADATA_BYTES: usize = 8 * 1024;

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub accounts: Accounts,
    pub limits: Limits,
}

pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    // Connection tasks live in the set, so dropping this future ends them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("blob: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if connections.len() >= shared.limits.max_connections {
                    tracing::warn!("blob: connection limit reached, closing a new connection");
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        // A client that shuts down its side after the request still
                        // gets the answer.
                        .half_close(true)
                        .max_buf_size(64 * 1024)
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!("blob: connection ended: {e}");
                    }
                });
            }
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("blob: a connection task panicked: {e}");
                    }
                }
            }
        }
    }
}

/// What every response carries.
struct Ctx {
    request_id: String,
    version: String,
    client_request_id: Option<HeaderValue>,
    head: bool,
}

#[derive(Debug)]
pub(crate) struct BlobError {
    status: StatusCode,
    code: &'static str,
    message: String,
    auth_detail: Option<String>,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> BlobError {
    BlobError {
        status,
        code,
        message: message.into(),
        auth_detail: None,
    }
}

fn internal(e: impl std::fmt::Display) -> BlobError {
    tracing::error!("blob: {e}");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        "The server encountered an internal error. Please retry the request.",
    )
}

fn not_served(what: &str) -> BlobError {
    err(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        format!("Runnel's blob store does not serve {what}."),
    )
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let version = req
        .headers()
        .get("x-ms-version")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 32)
        .unwrap_or(DEFAULT_VERSION)
        .to_string();
    let ctx = Ctx {
        request_id: uuid::Uuid::new_v4().to_string(),
        version,
        client_request_id: req.headers().get("x-ms-client-request-id").cloned(),
        head: req.method() == Method::HEAD,
    };
    let result = route(shared, req).await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => error_response(&ctx, e),
    };
    let h = resp.headers_mut();
    insert(h, "x-ms-request-id", &ctx.request_id);
    insert(h, "x-ms-version", &ctx.version);
    insert(h, "server", "Runnel-Blob");
    if let Some(v) = ctx.client_request_id {
        h.insert("x-ms-client-request-id", v);
    }
    if ctx.head || resp.status() == StatusCode::NOT_MODIFIED {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

fn error_response(ctx: &Ctx, e: BlobError) -> Response<Full<Bytes>> {
    let time = httpdate::fmt_http_date(crate::now());
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\nRequestId:{}\nTime:{}</Message>",
        e.code,
        xml_escape(&e.message),
        ctx.request_id,
        time
    );
    if let Some(detail) = &e.auth_detail {
        body.push_str("<AuthenticationErrorDetail>");
        body.push_str(&xml_escape(detail));
        body.push_str("</AuthenticationErrorDetail>");
    }
    body.push_str("</Error>");
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = e.status;
    let h = resp.headers_mut();
    insert(h, "x-ms-error-code", e.code);
    insert(h, "content-type", "application/xml");
    resp
}

/// A header value from our own text; text that cannot be one is left out, never panics.
fn insert(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The request's parts that the routes need, once authenticated.
struct Req {
    method: Method,
    headers: HeaderMap,
    account: String,
    container: String,
    blob: Option<String>,
    query: Vec<(String, String)>,
    host: String,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn route(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BlobError> {
    let raw_path = req.uri().path().to_string();
    let raw_query = req.uri().query().map(str::to_string);
    let (account, container, blob) = split_path(&raw_path)?;
    let now = crate::now();
    if let Err(failure) = auth::verify(
        &shared.accounts,
        &account,
        req.method().as_str(),
        req.headers(),
        &raw_path,
        raw_query.as_deref(),
        now,
    ) {
        return Err(match failure {
            AuthFailure::Missing => err(
                StatusCode::UNAUTHORIZED,
                "NoAuthenticationInformation",
                "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
            ),
            AuthFailure::Failed(detail) => BlobError {
                auth_detail: Some(detail),
                ..err(
                    StatusCode::FORBIDDEN,
                    "AuthenticationFailed",
                    "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
                )
            },
        });
    }
    let Some(container) = container else {
        return Err(not_served("account-level operations"));
    };
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let r = Req {
        method: parts.method,
        headers: parts.headers,
        account,
        container,
        blob,
        query: auth::query_pairs(raw_query.as_deref().unwrap_or("")).collect(),
        host,
    };
    let comp = r.param("comp").map(str::to_ascii_lowercase);
    let restype = r.param("restype").map(str::to_ascii_lowercase);
    let content = read_body(&r.headers, body, shared.limits.max_body_bytes).await?;
    match (&r.blob, restype.as_deref(), comp.as_deref(), &r.method) {
        (None, Some("container"), None, &Method::PUT) => create_container(shared, &r, now).await,
        (None, Some("container"), None, &Method::GET | &Method::HEAD) => {
            container_properties(shared, &r).await
        }
        (None, Some("container"), None, &Method::DELETE) => delete_container(shared, &r).await,
        (None, Some("container"), Some("list"), &Method::GET) => list_blobs(shared, &r).await,
        (None, Some("container"), Some(other), _) => {
            Err(not_served(&format!("container operation comp={other}")))
        }
        (None, _, _, _) => Err(err(
            StatusCode::BAD_REQUEST,
            "InvalidUri",
            "The requested URI does not represent any resource on the server (container operations need restype=container; blobs in $root are not served).",
        )),
        (Some(_), _, None, &Method::PUT) => put_blob(shared, &r, content, now).await,
        (Some(_), _, Some("metadata"), &Method::PUT) => set_metadata(shared, &r, now).await,
        (Some(_), _, None, &Method::GET | &Method::HEAD) => get_blob(shared, &r).await,
        (Some(_), _, None, &Method::DELETE) => delete_blob(shared, &r).await,
        (Some(_), _, Some(other), _) => Err(not_served(&format!("blob operation comp={other}"))),
        (Some(_), _, None, m) => Err(err(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedHttpVerb",
            format!("The resource doesn't support the specified HTTP verb {m}."),
        )),
    }
}

/// `/account/container[/blob]`, the blob name percent-decoded.
fn split_path(raw: &str) -> Result<(String, Option<String>, Option<String>), BlobError> {
    let invalid = |m: &str| err(StatusCode::BAD_REQUEST, "InvalidUri", m.to_string());
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    let (account, rest) = rest.split_once('/').unwrap_or((rest, ""));
    if account.is_empty() {
        return Err(invalid(
            "path-style URLs only: /<account>/<container>/<blob>",
        ));
    }
    let (container, blob) = rest.split_once('/').unwrap_or((rest, ""));
    let container = if container.is_empty() {
        None
    } else {
        let valid = (3..=63).contains(&container.len())
            && container
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !container.starts_with('-')
            && !container.ends_with('-')
            && !container.contains("--");
        if !valid {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "InvalidResourceName",
                "The specifed resource name contains invalid characters.",
            ));
        }
        Some(container.to_string())
    };
    let blob = if blob.is_empty() {
        None
    } else {
        let name = String::from_utf8(auth::percent_decode(blob))
            .map_err(|_| invalid("the blob name is not UTF-8"))?;
        if name.chars().count() > 1024 || name.chars().any(char::is_control) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "InvalidResourceName",
                "Blob names are 1 to 1024 characters, without control characters.",
            ));
        }
        Some(name)
    };
    Ok((account.to_string(), container, blob))
}

async fn read_body(headers: &HeaderMap, body: Incoming, max: usize) -> Result<Bytes, BlobError> {
    let too_large = || {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("The request body is too large and exceeds the maximum permissible limit ({max} bytes)."),
        )
    };
    if let Some(len) = headers.get("content-length") {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "InvalidHeaderValue",
                    "Content-Length",
                )
            })?;
        if len > max as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(err(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("The request body could not be read: {e}"),
        )),
    }
}

/// Runs a store operation off the async threads (it fsyncs).
async fn with_store<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut Store) -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = shared
            .store
            .lock()
            .map_err(|_| internal("the store's lock is poisoned"))?;
        f(&mut store)
    })
    .await
    .map_err(internal)?
}

fn container_not_found() -> BlobError {
    err(
        StatusCode::NOT_FOUND,
        "ContainerNotFound",
        "The specified container does not exist.",
    )
}

fn blob_not_found() -> BlobError {
    err(
        StatusCode::NOT_FOUND,
        "BlobNotFound",
        "The specified blob does not exist.",
    )
}

/// `x-ms-meta-*` headers: names lowercased (they are case-insensitive), checked as
/// C# identifiers, at most 8 KiB in all.
fn metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, BlobError> {
    let mut out = BTreeMap::new();
    let mut size = 0;
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix("x-ms-meta-") else {
            continue;
        };
        let valid = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let value = value.to_str().ok();
        let (true, Some(value)) = (valid, value) else {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "InvalidMetadata",
                format!("The metadata specified is invalid. It has characters that are not permitted: {key:?}."),
            ));
        };
        size += key.len() + value.len();
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "InvalidMetadata",
                format!("The metadata name {key:?} is given twice."),
            ));
        }
    }
    if size > MAX_METADATA_BYTES {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "MetadataTooLarge",
            "The size of the specified metadata exceeds the maximum size permitted (8 KiB).",
        ));
    }
    Ok(out)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The conditional headers of a request, evaluated against the blob as it is.
struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<SystemTime>,
    if_unmodified_since: Option<SystemTime>,
}

#[derive(PartialEq)]
enum Kind {
    /// Put Blob: If-None-Match: * on an existing blob is 409 BlobAlreadyExists.
    Create,
    /// Other writes: a failed condition is 412.
    Write,
    /// Reads: If-None-Match / If-Modified-Since failures are 304.
    Read,
}

impl Conditions {
    fn from(headers: &HeaderMap) -> Conditions {
        let date = |n: &str| header(headers, n).and_then(|d| httpdate::parse_http_date(&d).ok());
        Conditions {
            if_match: header(headers, "if-match"),
            if_none_match: header(headers, "if-none-match"),
            if_modified_since: date("if-modified-since"),
            if_unmodified_since: date("if-unmodified-since"),
        }
    }

    fn check(&self, current: Option<&Props>, kind: Kind) -> Result<(), BlobError> {
        let not_met = || {
            err(
                StatusCode::PRECONDITION_FAILED,
                "ConditionNotMet",
                "The condition specified using HTTP conditional header(s) is not met.",
            )
        };
        let not_modified = || err(StatusCode::NOT_MODIFIED, "ConditionNotMet", "Not modified.");
        let Some(props) = current else {
            // Nothing to match: If-Match (even *) fails; the others pass.
            return match self.if_match {
                Some(_) => Err(not_met()),
                None => Ok(()),
            };
        };
        let modified = UNIX_EPOCH + Duration::from_millis(props.modified_ms);
        // Header dates have whole seconds.
        let modified_s = UNIX_EPOCH
            + Duration::from_secs(
                modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
        if let Some(m) = &self.if_match {
            if !etag_matches(m, &props.etag) {
                return Err(not_met());
            }
        }
        if let Some(t) = self.if_unmodified_since {
            if modified_s > t {
                return Err(not_met());
            }
        }
        if let Some(m) = &self.if_none_match {
            if etag_matches(m, &props.etag) {
                return Err(match kind {
                    Kind::Create if m.trim() == "*" => err(
                        StatusCode::CONFLICT,
                        "BlobAlreadyExists",
                        "The specified blob already exists.",
                    ),
                    Kind::Read => not_modified(),
                    _ => not_met(),
                });
            }
        }
        if let Some(t) = self.if_modified_since {
            if modified_s <= t {
                return Err(if kind == Kind::Read {
                    not_modified()
                } else {
                    not_met()
                });
            }
        }
        Ok(())
    }
}

/// An If-Match / If-None-Match list against an ETag; quotes and W/ are ignored.
fn etag_matches(list: &str, etag: &str) -> bool {
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    let etag = bare(etag);
    list.split(',').any(|e| e.trim() == "*" || bare(e) == etag)
}

fn rfc1123(ms: u64) -> String {
    // httpdate formats years up to 9999 only; stored times past that are not ours.
    const MAX_MS: u64 = 253_402_300_799_000;
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms.min(MAX_MS)))
}

fn with_props(status: StatusCode, props: &Props) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    insert(h, "etag", &props.etag);
    insert(h, "last-modified", &rfc1123(props.modified_ms));
    resp
}

async fn create_container(
    shared: &Arc<Shared>,
    r: &Req,
    now: SystemTime,
) -> Result<Response<Full<Bytes>>, BlobError> {
    let md = metadata(&r.headers)?;
    let (account, container) = (r.account.clone(), r.container.clone());
    let props = with_store(shared, move |s| {
        s.create_container(&account, &container, md, now)
            .map_err(internal)
    })
    .await?;
    match props {
        Some(p) => Ok(with_props(StatusCode::CREATED, &p)),
        None => Err(err(
            StatusCode::CONFLICT,
            "ContainerAlreadyExists",
            "The specified container already exists.",
        )),
    }
}

async fn container_properties(
    shared: &Arc<Shared>,
    r: &Req,
) -> Result<Response<Full<Bytes>>, BlobError> {
    let (account, container) = (r.account.clone(), r.container.clone());
    let props = with_store(shared, move |s| {
        s.container(&account, &container)
            .cloned()
            .ok_or_else(container_not_found)
    })
    .await?;
    let mut resp = with_props(StatusCode::OK, &props);
    let h = resp.headers_mut();
    add_metadata_headers(h, &props.metadata);
    insert(h, "x-ms-lease-status", "unlocked");
    insert(h, "x-ms-lease-state", "available");
    insert(h, "x-ms-has-immutability-policy", "false");
    insert(h, "x-ms-has-legal-hold", "false");
    Ok(resp)
}

async fn delete_container(
    shared: &Arc<Shared>,
    r: &Req,
) -> Result<Response<Full<Bytes>>, BlobError> {
    let (account, container) = (r.account.clone(), r.container.clone());
    let deleted = with_store(shared, move |s| {
        s.delete_container(&account, &container).map_err(internal)
    })
    .await?;
    if !deleted {
        return Err(container_not_found());
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

fn add_metadata_headers(h: &mut HeaderMap, md: &BTreeMap<String, String>) {
    for (k, v) in md {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
}

async fn list_blobs(shared: &Arc<Shared>, r: &Req) -> Result<Response<Full<Bytes>>, BlobError> {
    if r.param("delimiter").is_some_and(|d| !d.is_empty()) {
        return Err(not_served(
            "List Blobs with a delimiter (hierarchical listing)",
        ));
    }
    let prefix = r.param("prefix").unwrap_or("").to_string();
    let marker = r
        .param("marker")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let max = match r.param("maxresults") {
        None => MAX_RESULTS,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
            _ => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "OutOfRangeQueryParameterValue",
                    format!("maxresults={v}: want 1 to {MAX_RESULTS}"),
                ))
            }
        },
    };
    let with_metadata = r.param("include").is_some_and(|i| {
        i.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("metadata"))
    });
    let (account, container) = (r.account.clone(), r.container.clone());
    let (p, m) = (prefix.clone(), marker.clone());
    let (blobs, next) = with_store(shared, move |s| {
        let (page, next) = s
            .list(&account, &container, &p, m.as_deref(), max)
            .ok_or_else(container_not_found)?;
        Ok((page.into_iter().cloned().collect::<Vec<BlobMeta>>(), next))
    })
    .await?;
    let mut x = String::with_capacity(256 + blobs.len() * 512);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
    x.push_str(&format!(
        "<EnumerationResults ServiceEndpoint=\"http://{}/{}/\" ContainerName=\"{}\">",
        xml_escape(&r.host),
        xml_escape(&r.account),
        xml_escape(&r.container)
    ));
    if r.param("prefix").is_some() {
        element(&mut x, "Prefix", &prefix);
    }
    if let Some(m) = &marker {
        element(&mut x, "Marker", m);
    }
    if r.param("maxresults").is_some() {
        element(&mut x, "MaxResults", &max.to_string());
    }
    x.push_str("<Blobs>");
    for b in &blobs {
        x.push_str("<Blob>");
        element(&mut x, "Name", &b.name);
        x.push_str("<Properties>");
        element(&mut x, "Creation-Time", &rfc1123(b.props.created_ms));
        element(&mut x, "Last-Modified", &rfc1123(b.props.modified_ms));
        // Unquoted here, quoted in headers, as Azure answers.
        element(&mut x, "Etag", b.props.etag.trim_matches('"'));
        element(&mut x, "Content-Length", &b.content_length.to_string());
        element(&mut x, "Content-Type", &b.content_type);
        for (tag, v) in [
            ("Content-Encoding", &b.content_encoding),
            ("Content-Language", &b.content_language),
            ("Content-MD5", &b.content_md5),
            ("Cache-Control", &b.cache_control),
            ("Content-Disposition", &b.content_disposition),
        ] {
            element(&mut x, tag, v.as_deref().unwrap_or(""));
        }
        element(&mut x, "BlobType", "BlockBlob");
        element(&mut x, "LeaseStatus", "unlocked");
        element(&mut x, "LeaseState", "available");
        x.push_str("</Properties>");
        if with_metadata {
            x.push_str("<Metadata>");
            for (k, v) in &b.props.metadata {
                element(&mut x, k, v);
            }
            x.push_str("</Metadata>");
        }
        x.push_str("</Blob>");
    }
    x.push_str("</Blobs>");
    element(&mut x, "NextMarker", next.as_deref().unwrap_or(""));
    x.push_str("</EnumerationResults>");
    let mut resp = Response::new(Full::new(Bytes::from(x)));
    insert(resp.headers_mut(), "content-type", "application/xml");
    Ok(resp)
}

fn element(x: &mut String, tag: &str, text: &str) {
    if text.is_empty() {
        x.push_str(&format!("<{tag} />"));
    } else {
        x.push_str(&format!("<{tag}>{}</{tag}>", xml_escape(text)));
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not representable in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

async fn put_blob(
    shared: &Arc<Shared>,
    r: &Req,
    content: Bytes,
    now: SystemTime,
) -> Result<Response<Full<Bytes>>, BlobError> {
    match header(&r.headers, "x-ms-blob-type").as_deref() {
        Some("BlockBlob") => {}
        Some(other) => {
            return Err(not_served(&format!(
                "x-ms-blob-type {other} (only BlockBlob)"
            )))
        }
        None => return Err(err(
            StatusCode::BAD_REQUEST,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type.",
        )),
    }
    let h = &r.headers;
    let new = NewBlob {
        content_type: header(h, "x-ms-blob-content-type").or_else(|| header(h, "content-type")),
        content_encoding: header(h, "x-ms-blob-content-encoding")
            .or_else(|| header(h, "content-encoding")),
        content_language: header(h, "x-ms-blob-content-language")
            .or_else(|| header(h, "content-language")),
        content_md5: header(h, "x-ms-blob-content-md5"),
        cache_control: header(h, "x-ms-blob-cache-control"),
        content_disposition: header(h, "x-ms-blob-content-disposition"),
        metadata: metadata(h)?,
    };
    let cond = Conditions::from(h);
    let (account, container, name) = (r.account.clone(), r.container.clone(), blob_name(r));
    let meta = with_store(shared, move |s| {
        if s.container(&account, &container).is_none() {
            return Err(container_not_found());
        }
        cond.check(
            s.blob(&account, &container, &name).map(|b| &b.props),
            Kind::Create,
        )?;
        s.put_blob(&account, &container, &name, new, &content, now)
            .map_err(internal)
    })
    .await?;
    let mut resp = with_props(StatusCode::CREATED, &meta.props);
    insert(resp.headers_mut(), "x-ms-request-server-encrypted", "false");
    if let Some(md5) = &meta.content_md5 {
        insert(resp.headers_mut(), "content-md5", md5);
    }
    Ok(resp)
}

fn blob_name(r: &Req) -> String {
    r.blob.clone().unwrap_or_default()
}

async fn set_metadata(
    shared: &Arc<Shared>,
    r: &Req,
    now: SystemTime,
) -> Result<Response<Full<Bytes>>, BlobError> {
    let md = metadata(&r.headers)?;
    let cond = Conditions::from(&r.headers);
    let (account, container, name) = (r.account.clone(), r.container.clone(), blob_name(r));
    let meta = with_store(shared, move |s| {
        if s.container(&account, &container).is_none() {
            return Err(container_not_found());
        }
        let current = s
            .blob(&account, &container, &name)
            .ok_or_else(blob_not_found)?;
        cond.check(Some(&current.props), Kind::Write)?;
        s.set_metadata(&account, &container, &name, md, now)
            .map_err(internal)
    })
    .await?;
    let mut resp = with_props(StatusCode::OK, &meta.props);
    insert(resp.headers_mut(), "x-ms-request-server-encrypted", "false");
    Ok(resp)
}

async fn get_blob(shared: &Arc<Shared>, r: &Req) -> Result<Response<Full<Bytes>>, BlobError> {
    let cond = Conditions::from(&r.headers);
    let head = r.method == Method::HEAD;
    let range = header(&r.headers, "x-ms-range").or_else(|| header(&r.headers, "range"));
    let (account, container, name) = (r.account.clone(), r.container.clone(), blob_name(r));
    let (meta, content) = with_store(shared, move |s| {
        if s.container(&account, &container).is_none() {
            return Err(container_not_found());
        }
        let meta = s
            .blob(&account, &container, &name)
            .cloned()
            .ok_or_else(blob_not_found)?;
        cond.check(Some(&meta.props), Kind::Read)?;
        let content = if head {
            Vec::new()
        } else {
            s.read_blob(&account, &container, &name).map_err(internal)?
        };
        Ok((meta, content))
    })
    .await?;
    let len = meta.content_length;
    let mut status = StatusCode::OK;
    let mut body = Bytes::from(content);
    let mut content_range = None;
    if let Some(spec) = range.filter(|_| !head) {
        let (start, end) = parse_range(&spec).ok_or_else(|| {
            err(
                StatusCode::BAD_REQUEST,
                "InvalidHeaderValue",
                format!("range {spec:?}"),
            )
        })?;
        if start >= len {
            return Err(err(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The range specified is invalid for the current size of the resource.",
            ));
        }
        let end = end.map_or(len - 1, |e| e.min(len - 1));
        body = body.slice(start as usize..=end as usize);
        status = StatusCode::PARTIAL_CONTENT;
        content_range = Some(format!("bytes {start}-{end}/{len}"));
    }
    let shown_len = body.len() as u64;
    let mut resp = with_props(status, &meta.props);
    *resp.body_mut() = Full::new(body);
    let h = resp.headers_mut();
    insert(
        h,
        "content-length",
        &if head { len } else { shown_len }.to_string(),
    );
    insert(h, "content-type", &meta.content_type);
    for (name, v) in [
        ("content-encoding", &meta.content_encoding),
        ("content-language", &meta.content_language),
        ("content-md5", &meta.content_md5),
        ("cache-control", &meta.cache_control),
        ("content-disposition", &meta.content_disposition),
    ] {
        if let Some(v) = v {
            insert(h, name, v);
        }
    }
    if let Some(cr) = content_range {
        insert(h, "content-range", &cr);
    }
    insert(h, "accept-ranges", "bytes");
    insert(h, "x-ms-blob-type", "BlockBlob");
    insert(h, "x-ms-creation-time", &rfc1123(meta.props.created_ms));
    insert(h, "x-ms-lease-status", "unlocked");
    insert(h, "x-ms-lease-state", "available");
    insert(h, "x-ms-server-encrypted", "false");
    add_metadata_headers(h, &meta.props.metadata);
    Ok(resp)
}

/// `bytes=a-b` or `bytes=a-`.
fn parse_range(spec: &str) -> Option<(u64, Option<u64>)> {
    let (a, b) = spec.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    match end {
        Some(e) if e < start => None,
        _ => Some((start, end)),
    }
}

async fn delete_blob(shared: &Arc<Shared>, r: &Req) -> Result<Response<Full<Bytes>>, BlobError> {
    let cond = Conditions::from(&r.headers);
    let (account, container, name) = (r.account.clone(), r.container.clone(), blob_name(r));
    with_store(shared, move |s| {
        if s.container(&account, &container).is_none() {
            return Err(container_not_found());
        }
        let current = s
            .blob(&account, &container, &name)
            .ok_or_else(blob_not_found)?;
        cond.check(Some(&current.props), Kind::Write)?;
        s.delete_blob(&account, &container, &name).map_err(internal)
    })
    .await?;
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::ACCEPTED;
    insert(resp.headers_mut(), "x-ms-delete-type-permanent", "true");
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists_match_with_or_without_quotes() {
        assert!(etag_matches("\"0x1\"", "\"0x1\""));
        assert!(etag_matches("0x1", "\"0x1\""));
        assert!(etag_matches("\"0x2\", W/\"0x1\"", "\"0x1\""));
        assert!(etag_matches("*", "\"0x1\""));
        assert!(!etag_matches("\"0x2\"", "\"0x1\""));
    }

    #[test]
    fn paths_split_into_account_container_and_blob() {
        let (a, c, b) = split_path("/devstoreaccount1/cont/ns%2Fhub/ownership/0").unwrap();
        assert_eq!(a, "devstoreaccount1");
        assert_eq!(c.as_deref(), Some("cont"));
        assert_eq!(b.as_deref(), Some("ns/hub/ownership/0"));
        assert!(split_path("/acct/Bad_Name").is_err());
        assert!(split_path("/acct/cont/%FF").is_err());
        assert!(split_path("/").is_err());
    }

    #[test]
    fn dates_far_in_the_future_do_not_panic() {
        assert_eq!(rfc1123(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(rfc1123(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("bytes=9-1"), None);
        assert_eq!(parse_range("lines=1-2"), None);
    }
}
