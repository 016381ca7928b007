//! Requests in, responses out: the request header, the message catalog of the APIs
//! Runnel implements, and the response framing.
//!
//! The message structs and their per-version codecs come from the `kafka-protocol` crate
//! (`messages::*`); this module adds what a broker needs around them:
//!
//! - [`SUPPORTED_APIS`], the one table of APIs and versions Runnel implements. The broker
//!   advertises exactly this table in ApiVersions ([`api_versions_response`]) and
//!   [`decode_request`] refuses everything outside it, so the two cannot drift apart.
//!   [`RequestBody`] and [`ResponseBody`] are generated from the same table, so a `match`
//!   over a request body is exhaustive over what we advertise.
//! - [`decode_request`]: a frame body (see [`crate::frame`]) to a typed [`Request`], with
//!   errors that tell the server whether to answer or close the connection.
//! - [`encode_response`]: size prefix + response header (v0/v1) + body.
//! - KIP-511: an ApiVersions request newer than we know is answered with a v0 response
//!   carrying `UNSUPPORTED_VERSION` and our versions ([`api_versions_fallback_response`]).
//!
//! Zero copy: decoding slices the frame's `Bytes`, so `client_id`, strings and, above
//! all, Produce `records` share the frame's memory.
//!
//! # Untrusted input
//!
//! `decode_request` never panics on any input: the header is read with explicit length
//! checks and kafka-protocol's decoders return errors (every primitive read is a
//! `try_get_*`, every string/bytes length is checked against the bytes left).
//!
//! Memory is a different matter. kafka-protocol 0.18 decodes an array as
//! `Vec::with_capacity(count)` with the count read straight off the wire (`i32`, or a
//! varint up to `u32::MAX` for compact arrays), *before* any element is read
//! (`protocol/types.rs`, `Array`/`CompactArray`). A 10-byte Metadata v0 body declaring
//! 2^31-1 topics asks the allocator for ~200 GB; when that fails Rust aborts the
//! process, which no `Result` or `catch_unwind` can stop. The counts cannot be checked
//! from outside the crate without re-implementing its schema (an `i32` count looks like
//! any other `i32` field), so the fix belongs in the crate: reject a count larger than
//! the bytes remaining, as Kafka's own generated Java code does ("Tried to allocate a
//! collection of size N, but there are only M bytes remaining"), since every element
//! takes at least one byte. Runnel must build against kafka-protocol patched that way
//! (a vendored copy under the workspace's `[patch.crates-io]`; upstream has the same fix
//! in open pull requests). The tests `oversized_array_count_is_an_error` and
//! `random_bodies_never_panic` check for the patch and fail with a message, rather than
//! abort, when it is missing or no longer applies (e.g. after a version bump).

use std::ops::RangeInclusive;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages as m;
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use crate::frame::{begin_frame, finish_frame, FrameError};

pub use kafka_protocol::messages;
pub use kafka_protocol::messages::ApiKey;
pub use kafka_protocol::protocol::StrBytes;

/// Kafka error code `UNSUPPORTED_VERSION`.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Bytes before the variable part of every request header: api key (i16), api version
/// (i16), correlation id (i32).
const FIXED_HEADER_LEN: usize = 8;

/// Generates, from one list, the version table and the request/response enums.
macro_rules! supported_apis {
    ($( $name:ident($req:ident, $resp:ident): $min:literal ..= $max:literal, )*) => {
        /// The APIs and versions Runnel implements, as `(api key, min, max)`.
        ///
        /// The broker advertises exactly this table in its ApiVersions response, and
        /// [`decode_request`] refuses any api key or version outside it. To add an API or
        /// a version, change this list and implement it; [`RequestBody`] and
        /// [`ResponseBody`] follow, and the tests check every listed version against
        /// what kafka-protocol can decode and encode.
        pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
            $( (ApiKey::$name, $min, $max), )*
        ];

        /// The body of a request whose API Runnel implements.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestBody {
            $( $name(m::$req), )*
        }

        /// The body of a response to a request in [`RequestBody`].
        #[derive(Debug, Clone, PartialEq)]
        pub enum ResponseBody {
            $( $name(m::$resp), )*
        }

        $(
            impl From<m::$req> for RequestBody {
                fn from(body: m::$req) -> Self {
                    RequestBody::$name(body)
                }
            }

            impl From<m::$resp> for ResponseBody {
                fn from(body: m::$resp) -> Self {
                    ResponseBody::$name(body)
                }
            }
        )*

        impl RequestBody {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $( RequestBody::$name(_) => ApiKey::$name, )*
                }
            }

            /// Decode a body of `api_key` at `version`. `None` if the API is not in the
            /// table. Errors are kafka-protocol's, flattened to text.
            fn decode(
                api_key: ApiKey,
                buf: &mut Bytes,
                version: i16,
            ) -> Option<Result<RequestBody, String>> {
                Some(match api_key {
                    $( ApiKey::$name => m::$req::decode(buf, version)
                        .map(RequestBody::$name)
                        .map_err(|e| format!("{e:#}")), )*
                    _ => return None,
                })
            }

            /// Encode the body (no header) at `version`. For clients and tests.
            pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), String> {
                match self {
                    $( RequestBody::$name(body) => body.encode(buf, version), )*
                }
                .map_err(|e| format!("{e:#}"))
            }

            /// Encoded size of the body at `version` (to size the frame buffer once).
            pub fn compute_size(&self, version: i16) -> Result<usize, String> {
                match self {
                    $( RequestBody::$name(body) => body.compute_size(version), )*
                }
                .map_err(|e| format!("{e:#}"))
            }

            #[cfg(test)]
            fn default_for(api_key: ApiKey) -> Option<RequestBody> {
                Some(match api_key {
                    $( ApiKey::$name => RequestBody::$name(Default::default()), )*
                    _ => return None,
                })
            }
        }

        impl ResponseBody {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $( ResponseBody::$name(_) => ApiKey::$name, )*
                }
            }

            /// Encode the body (no header) at `version`.
            pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), String> {
                match self {
                    $( ResponseBody::$name(body) => body.encode(buf, version), )*
                }
                .map_err(|e| format!("{e:#}"))
            }

            /// Decode a body (no header) of `api_key` at `version`. For clients and tests.
            pub fn decode(api_key: ApiKey, buf: &mut Bytes, version: i16) -> Result<ResponseBody, String> {
                match api_key {
                    $( ApiKey::$name => m::$resp::decode(buf, version)
                        .map(ResponseBody::$name)
                        .map_err(|e| format!("{e:#}")), )*
                    other => Err(format!("{other:?} is not a supported API")),
                }
            }

            #[cfg(test)]
            fn default_for(api_key: ApiKey) -> Option<ResponseBody> {
                Some(match api_key {
                    $( ApiKey::$name => ResponseBody::$name(Default::default()), )*
                    _ => return None,
                })
            }
        }
    };
}

// Minimums and maximums are capped by what kafka-protocol 0.18 decodes (it follows
// Kafka 4.x, which dropped e.g. OffsetCommit < 2 and OffsetForLeaderEpoch < 2); the
// tests check that. Where the crate knows newer versions we stop at the newest one Runnel
// implements: Produce 12-13 (transaction v2, topic ids), ListOffsets 9-10, Metadata 13,
// Fetch 17-18, DescribeCluster 2, InitProducerId 6, FindCoordinator 6,
// OffsetCommit/OffsetFetch 10 are left out. ConsumerGroupHeartbeat v1 (client-generated
// member ids, regex subscriptions; librdkafka 2.12 sends only v1) is advertised, but regex
// subscriptions are refused with INVALID_REGULAR_EXPRESSION.
// Fetch 13+ and Metadata 10+ carry topic ids, so the broker must keep a topic id per topic.
supported_apis! {
    ApiVersions(ApiVersionsRequest, ApiVersionsResponse): 0..=4,
    Metadata(MetadataRequest, MetadataResponse): 0..=12,
    // v12 is transaction version 2 (KIP-890): the partition joins the transaction
    // implicitly. v13 (topic ids) is left out.
    Produce(ProduceRequest, ProduceResponse): 3..=12,
    Fetch(FetchRequest, FetchResponse): 4..=16,
    ListOffsets(ListOffsetsRequest, ListOffsetsResponse): 1..=8,
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse): 2..=4,
    CreateTopics(CreateTopicsRequest, CreateTopicsResponse): 2..=7,
    DeleteTopics(DeleteTopicsRequest, DeleteTopicsResponse): 1..=6,
    CreatePartitions(CreatePartitionsRequest, CreatePartitionsResponse): 0..=3,
    DescribeConfigs(DescribeConfigsRequest, DescribeConfigsResponse): 1..=4,
    AlterConfigs(AlterConfigsRequest, AlterConfigsResponse): 0..=2,
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse): 0..=1,
    DeleteRecords(DeleteRecordsRequest, DeleteRecordsResponse): 0..=2,
    DescribeCluster(DescribeClusterRequest, DescribeClusterResponse): 0..=1,
    DescribeLogDirs(DescribeLogDirsRequest, DescribeLogDirsResponse): 1..=4,
    InitProducerId(InitProducerIdRequest, InitProducerIdResponse): 0..=5,
    // Transactions (KIP-98, KIP-890). AddPartitionsToTxn v4+ is the broker-to-coordinator
    // form (batched, verify-only); EndTxn v5 returns the bumped epoch (version 2).
    AddPartitionsToTxn(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse): 0..=5,
    AddOffsetsToTxn(AddOffsetsToTxnRequest, AddOffsetsToTxnResponse): 0..=4,
    EndTxn(EndTxnRequest, EndTxnResponse): 0..=5,
    TxnOffsetCommit(TxnOffsetCommitRequest, TxnOffsetCommitResponse): 0..=5,
    // Sent by Admin.abortTransaction (kafka-transactions.sh abort) to the leader.
    WriteTxnMarkers(WriteTxnMarkersRequest, WriteTxnMarkersResponse): 1..=1,
    // KIP-664.
    DescribeTransactions(DescribeTransactionsRequest, DescribeTransactionsResponse): 0..=0,
    // v1: KIP-994's duration filter; v2: KIP-1152's transactional id pattern.
    ListTransactions(ListTransactionsRequest, ListTransactionsResponse): 0..=2,
    DescribeProducers(DescribeProducersRequest, DescribeProducersResponse): 0..=0,
    FindCoordinator(FindCoordinatorRequest, FindCoordinatorResponse): 0..=5,
    JoinGroup(JoinGroupRequest, JoinGroupResponse): 0..=9,
    SyncGroup(SyncGroupRequest, SyncGroupResponse): 0..=5,
    Heartbeat(HeartbeatRequest, HeartbeatResponse): 0..=4,
    LeaveGroup(LeaveGroupRequest, LeaveGroupResponse): 0..=5,
    OffsetCommit(OffsetCommitRequest, OffsetCommitResponse): 2..=9,
    OffsetFetch(OffsetFetchRequest, OffsetFetchResponse): 1..=9,
    DescribeGroups(DescribeGroupsRequest, DescribeGroupsResponse): 0..=6,
    ListGroups(ListGroupsRequest, ListGroupsResponse): 0..=5,
    DeleteGroups(DeleteGroupsRequest, DeleteGroupsResponse): 0..=2,
    OffsetDelete(OffsetDeleteRequest, OffsetDeleteResponse): 0..=0,
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse): 0..=1,
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse): 0..=1,
    DescribeTopicPartitions(DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse): 0..=0,
    // No authorizer: answered with SECURITY_DISABLED, as a Kafka broker without one does.
    DescribeAcls(DescribeAclsRequest, DescribeAclsResponse): 1..=3,
    CreateAcls(CreateAclsRequest, CreateAclsResponse): 1..=3,
    DeleteAcls(DeleteAclsRequest, DeleteAclsResponse): 1..=3,
    // Answered by the connection (kafka/src/authentication.rs), not the handlers: they
    // change who the connection is. v0 of SaslHandshake sends the tokens unframed.
    SaslHandshake(SaslHandshakeRequest, SaslHandshakeResponse): 0..=1,
    SaslAuthenticate(SaslAuthenticateRequest, SaslAuthenticateResponse): 0..=2,
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse): 0..=0,
    AlterUserScramCredentials(AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse): 0..=0,
    // KIP-546, as Kafka 4 advertises them.
    DescribeClientQuotas(DescribeClientQuotasRequest, DescribeClientQuotasResponse): 0..=1,
    AlterClientQuotas(AlterClientQuotasRequest, AlterClientQuotasResponse): 0..=1,
}

/// The versions of `api_key` Runnel implements, or `None` if it does not implement it.
pub fn supported_versions(api_key: ApiKey) -> Option<RangeInclusive<i16>> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, min, max)| min..=max)
}

/// The request header, with the api key resolved. Header tagged fields are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<StrBytes>,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub header: RequestHeader,
    pub body: RequestBody,
}

/// Why a request frame could not be decoded, and what the server should do about it:
/// send [`RequestError::response`] if there is one, otherwise log and close the
/// connection (the stream may be out of sync, as Kafka does).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Shorter than api key + version + correlation id: garbage.
    #[error("request of {len} bytes is too short for a request header")]
    TooShort { len: usize },
    /// Not a Kafka api key, or one Runnel does not implement (Kafka closes the
    /// connection for both).
    #[error("unsupported api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    /// A version outside [`SUPPORTED_APIS`]. Answerable for ApiVersions (KIP-511); for
    /// other APIs a client only sends it if it ignored our ApiVersions response.
    #[error("unsupported version {api_version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
    },
    /// The header after the fixed fields (client id, tagged fields) is malformed.
    #[error("malformed {api_key:?} v{api_version} request header: {reason}")]
    MalformedHeader {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        reason: String,
    },
    /// The body does not decode as the version the header claims.
    #[error("malformed {api_key:?} v{api_version} request body: {reason}")]
    MalformedBody {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        reason: String,
    },
}

impl RequestError {
    /// The correlation id, when the frame was long enough to carry one.
    pub fn correlation_id(&self) -> Option<i32> {
        match self {
            RequestError::TooShort { .. } => None,
            RequestError::UnknownApiKey { correlation_id, .. }
            | RequestError::UnsupportedVersion { correlation_id, .. }
            | RequestError::MalformedHeader { correlation_id, .. }
            | RequestError::MalformedBody { correlation_id, .. } => Some(*correlation_id),
        }
    }

    /// The complete response frame to send for this error, or `None` if the server
    /// should close the connection instead. Only an ApiVersions request of a version
    /// we do not know gets an answer (KIP-511): [`api_versions_fallback_response`].
    pub fn response(&self) -> Option<Bytes> {
        match self {
            RequestError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            } => Some(api_versions_fallback_response(*correlation_id)),
            _ => None,
        }
    }
}

/// Decode one request from a frame body (without its size prefix).
///
/// Order of checks: the fixed 8 header bytes, the api key against [`SUPPORTED_APIS`],
/// the version against the table, then the rest of the header in the version the api
/// key and version call for (v2 with tagged fields for flexible versions, else v1), then
/// the body. Bytes after the body are ignored, as Kafka does.
pub fn decode_request(mut frame: Bytes) -> Result<Request, RequestError> {
    if frame.len() < FIXED_HEADER_LEN {
        return Err(RequestError::TooShort { len: frame.len() });
    }
    let raw_api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);

    let (api_key, versions) = match ApiKey::try_from(raw_api_key)
        .ok()
        .and_then(|key| supported_versions(key).map(|v| (key, v)))
    {
        Some(found) => found,
        None => {
            return Err(RequestError::UnknownApiKey {
                api_key: raw_api_key,
                correlation_id,
            });
        }
    };
    if !versions.contains(&api_version) {
        return Err(RequestError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
        });
    }

    // kafka-protocol decodes header v1/v2 only; v0 (no client id) was used by
    // ControlledShutdown v0 alone, which we do not implement.
    let header_version = api_key.request_header_version(api_version);
    let header = m::RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        RequestError::MalformedHeader {
            api_key,
            api_version,
            correlation_id,
            reason: format!("{e:#}"),
        }
    })?;

    let body = match RequestBody::decode(api_key, &mut frame, api_version) {
        Some(Ok(body)) => body,
        Some(Err(reason)) => {
            return Err(RequestError::MalformedBody {
                api_key,
                api_version,
                correlation_id,
                reason,
            });
        }
        // Unreachable: api_key was found in the table the enum is generated from.
        None => {
            return Err(RequestError::UnknownApiKey {
                api_key: raw_api_key,
                correlation_id,
            });
        }
    };

    Ok(Request {
        header: RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: header.client_id,
        },
        body,
    })
}

/// Why a response (or request) could not be encoded. Encoding fails when the message
/// sets a field that does not exist in the requested version (kafka-protocol refuses to
/// drop it silently) or when the message is larger than a frame can carry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("a {body:?} body cannot answer a {header:?} request")]
    ApiKeyMismatch { header: ApiKey, body: ApiKey },
    #[error("cannot encode {api_key:?} v{api_version}: {reason}")]
    Message {
        api_key: ApiKey,
        api_version: i16,
        reason: String,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Encode the response to the request with `header`: size prefix, response header (v0,
/// or v1 with tagged fields for flexible versions; always v0 for ApiVersions) and the
/// body at the request's version.
pub fn encode_response(header: &RequestHeader, body: &ResponseBody) -> Result<Bytes, EncodeError> {
    let mut dst = BytesMut::new();
    encode_response_into(header, body, &mut dst)?;
    Ok(dst.freeze())
}

/// Like [`encode_response`], appending to `dst` (e.g. to coalesce pipelined responses
/// into one write). On error `dst` is left as it was.
pub fn encode_response_into(
    header: &RequestHeader,
    body: &ResponseBody,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    if body.api_key() != header.api_key {
        return Err(EncodeError::ApiKeyMismatch {
            header: header.api_key,
            body: body.api_key(),
        });
    }
    let start = begin_frame(dst);
    let result = encode_response_parts(header, body, dst);
    let result = result.and_then(|()| finish_frame(dst, start).map_err(EncodeError::from));
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn encode_response_parts(
    header: &RequestHeader,
    body: &ResponseBody,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let (api_key, api_version) = (header.api_key, header.api_version);
    let message_error = |reason: String| EncodeError::Message {
        api_key,
        api_version,
        reason,
    };
    let response_header = m::ResponseHeader::default().with_correlation_id(header.correlation_id);
    response_header
        .encode(dst, api_key.response_header_version(api_version))
        .map_err(|e| message_error(format!("response header: {e:#}")))?;
    body.encode(dst, api_version).map_err(message_error)
}

/// Encode a request frame (size prefix, header, body). For clients and tests.
pub fn encode_request(header: &RequestHeader, body: &RequestBody) -> Result<Bytes, EncodeError> {
    if body.api_key() != header.api_key {
        return Err(EncodeError::ApiKeyMismatch {
            header: header.api_key,
            body: body.api_key(),
        });
    }
    let (api_key, api_version) = (header.api_key, header.api_version);
    let message_error = |reason: String| EncodeError::Message {
        api_key,
        api_version,
        reason,
    };
    // Sized once: a produce request is mostly its record batches, and growing the
    // buffer while they are copied in copied them again (a few percent of a producer's
    // CPU). The header's client id and tags are a small allowance.
    let body_size = body.compute_size(api_version).map_err(message_error)?;
    let client_id = header.client_id.as_ref().map_or(0, |c| c.len());
    let mut dst = BytesMut::with_capacity(4 + 16 + client_id + body_size);
    let start = begin_frame(&mut dst);
    let request_header = m::RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(header.correlation_id)
        .with_client_id(header.client_id.clone());
    request_header
        .encode(&mut dst, api_key.request_header_version(api_version))
        .map_err(|e| message_error(format!("request header: {e:#}")))?;
    body.encode(&mut dst, api_version).map_err(message_error)?;
    finish_frame(&mut dst, start)?;
    Ok(dst.freeze())
}

/// Decode a response frame body (without size prefix) to the request `header`. Returns
/// the correlation id found and the body. For clients and tests.
pub fn decode_response(
    header: &RequestHeader,
    mut frame: Bytes,
) -> Result<(i32, ResponseBody), String> {
    let version = header.api_key.response_header_version(header.api_version);
    let response_header =
        m::ResponseHeader::decode(&mut frame, version).map_err(|e| format!("{e:#}"))?;
    let body = ResponseBody::decode(header.api_key, &mut frame, header.api_version)?;
    Ok((response_header.correlation_id, body))
}

/// The finalized `transaction.version` (KIP-890): 2, so that clients that know it run
/// transaction version 2 (epoch bump per transaction, implicit partition adds).
pub const TRANSACTION_VERSION: i16 = 2;

/// The features of an ApiVersions v3+ response: `transaction.version` supported 0-2 and
/// finalized at [`TRANSACTION_VERSION`] (epoch 0: it never changes on a running node).
pub fn with_features(response: m::ApiVersionsResponse) -> m::ApiVersionsResponse {
    let name = || StrBytes::from_static_str("transaction.version");
    response
        .with_supported_features(vec![
            m::api_versions_response::SupportedFeatureKey::default()
                .with_name(name())
                .with_min_version(0)
                .with_max_version(TRANSACTION_VERSION),
        ])
        .with_finalized_features_epoch(0)
        .with_finalized_features(vec![
            m::api_versions_response::FinalizedFeatureKey::default()
                .with_name(name())
                .with_min_version_level(TRANSACTION_VERSION)
                .with_max_version_level(TRANSACTION_VERSION),
        ])
}

/// The ApiVersions response body listing [`SUPPORTED_APIS`], error code 0. The handler
/// may set `throttle_time_ms` and features before encoding it.
pub fn api_versions_response() -> m::ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            m::api_versions_response::ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    m::ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// KIP-511 fallback: the complete frame answering an ApiVersions request whose version
/// is newer than we support. It is encoded as version 0 (header v0, body v0), the one
/// format every client can read, with `UNSUPPORTED_VERSION` and our whole version table;
/// the client then retries with the highest ApiVersions version we list.
pub fn api_versions_fallback_response(correlation_id: i32) -> Bytes {
    let header = RequestHeader {
        api_key: ApiKey::ApiVersions,
        api_version: 0,
        correlation_id,
        client_id: None,
    };
    let body = api_versions_response().with_error_code(UNSUPPORTED_VERSION);
    // Cannot fail: v0 has only error_code and api_keys, and every other field keeps its
    // default, which is what kafka-protocol requires of fields absent in v0 (tested).
    encode_response(&header, &ResponseBody::ApiVersions(body))
        .expect("ApiVersions v0 fallback response encodes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameDecoder, SIZE_PREFIX_LEN};
    use bytes::BufMut;
    use kafka_protocol::protocol::HeaderVersion;
    use proptest::prelude::*;

    /// Build a request frame body with kafka-protocol's own encoders (not ours).
    fn raw_request<M: Encodable + HeaderVersion>(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &M,
    ) -> Bytes {
        let header = m::RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test-client")));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, M::header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    fn api_versions_v3() -> Bytes {
        let body = m::ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("librdkafka"))
            .with_client_software_version(StrBytes::from_static_str("2.3.0"));
        raw_request(ApiKey::ApiVersions, 3, 7, &body)
    }

    fn metadata_v12() -> (m::MetadataRequest, Bytes) {
        let mut named = m::metadata_request::MetadataRequestTopic::default();
        named.name = Some(m::TopicName(StrBytes::from_static_str("orders")));
        let mut by_id = m::metadata_request::MetadataRequestTopic::default();
        by_id.topic_id = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        let body = m::MetadataRequest::default()
            .with_topics(Some(vec![named, by_id]))
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(true);
        let frame = raw_request(ApiKey::Metadata, 12, 42, &body);
        (body, frame)
    }

    fn produce_v9(records: Bytes) -> (m::ProduceRequest, Bytes) {
        let partition = m::produce_request::PartitionProduceData::default()
            .with_index(3)
            .with_records(Some(records));
        let topic = m::produce_request::TopicProduceData::default()
            .with_name(m::TopicName(StrBytes::from_static_str("events")))
            .with_partition_data(vec![partition]);
        let body = m::ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![topic]);
        let frame = raw_request(ApiKey::Produce, 9, 1001, &body);
        (body, frame)
    }

    fn range_of(frame: &Bytes) -> std::ops::Range<usize> {
        let start = frame.as_ptr() as usize;
        start..start + frame.len()
    }

    #[test]
    fn api_versions_v3_flexible_round_trip() {
        let req = decode_request(api_versions_v3()).unwrap();
        assert_eq!(
            req.header,
            RequestHeader {
                api_key: ApiKey::ApiVersions,
                api_version: 3,
                correlation_id: 7,
                client_id: Some(StrBytes::from_static_str("test-client")),
            }
        );
        let RequestBody::ApiVersions(body) = req.body else {
            panic!("wrong body")
        };
        assert_eq!(body.client_software_name.as_str(), "librdkafka");
        assert_eq!(body.client_software_version.as_str(), "2.3.0");
    }

    #[test]
    fn metadata_v12_round_trip() {
        let (sent, frame) = metadata_v12();
        let req = decode_request(frame).unwrap();
        assert_eq!(req.header.api_key, ApiKey::Metadata);
        assert_eq!(req.header.correlation_id, 42);
        assert_eq!(req.body, RequestBody::Metadata(sent));
    }

    #[test]
    fn produce_v9_keeps_records_zero_copy() {
        let batch = crate::record_batch::builder::batch_of_values(1_700_000_000_000, 10, b"v");
        let (sent, frame) = produce_v9(Bytes::from(batch.clone()));
        let frame_range = range_of(&frame);
        let req = decode_request(frame).unwrap();
        let RequestBody::Produce(body) = &req.body else {
            panic!("wrong body")
        };
        let records = body.topic_data[0].partition_data[0]
            .records
            .as_ref()
            .unwrap();
        assert_eq!(&records[..], &batch[..]);
        let records_range = range_of(records);
        assert!(
            frame_range.start <= records_range.start && records_range.end <= frame_range.end,
            "records must be a slice of the frame, not a copy"
        );
        assert_eq!(req.body, RequestBody::Produce(sent));
    }

    #[test]
    fn request_header_versions_follow_flexibility() {
        // Produce v8 is the last non-flexible version (header v1), v9 the first flexible
        // one (header v2, tagged fields). A header tagged field must be skipped.
        let (_, v9) = produce_v9(Bytes::from_static(b""));
        assert!(decode_request(v9).is_ok());
        let mut header = m::RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(9)
            .with_correlation_id(5)
            .with_client_id(None);
        header
            .unknown_tagged_fields
            .insert(1, Bytes::from_static(b"xyz"));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, 2).unwrap();
        m::MetadataRequest::default().encode(&mut buf, 9).unwrap();
        let req = decode_request(buf.freeze()).unwrap();
        assert_eq!(req.header.client_id, None);
        assert_eq!(req.header.correlation_id, 5);
    }

    #[test]
    fn every_supported_version_decodes_and_encodes() {
        for &(api_key, min, max) in SUPPORTED_APIS {
            assert!(min <= max, "{api_key:?}");
            let crate_range = api_key.valid_versions();
            assert!(
                crate_range.min <= min && max <= crate_range.max,
                "{api_key:?} {min}..={max} outside kafka-protocol's {crate_range}"
            );
            for version in min..=max {
                // Request: encoded by kafka-protocol, decoded by us.
                let body = RequestBody::default_for(api_key).unwrap();
                let header = RequestHeader {
                    api_key,
                    api_version: version,
                    correlation_id: version as i32,
                    client_id: Some(StrBytes::from_static_str("c")),
                };
                let frame = encode_request(&header, &body).unwrap();
                let decoded = decode_request(frame.slice(SIZE_PREFIX_LEN..))
                    .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
                assert_eq!(decoded.header, header);
                assert_eq!(decoded.body, body, "{api_key:?} v{version}");

                // Response: encoded by us, decoded back.
                let response = ResponseBody::default_for(api_key).unwrap();
                let bytes = encode_response(&header, &response)
                    .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"));
                let (correlation_id, back) =
                    decode_response(&header, bytes.slice(SIZE_PREFIX_LEN..)).unwrap();
                assert_eq!(correlation_id, header.correlation_id);
                assert_eq!(back, response, "{api_key:?} v{version}");
            }
        }
    }

    #[test]
    fn table_has_no_duplicates_and_advertises_itself() {
        let mut keys: Vec<i16> = SUPPORTED_APIS.iter().map(|(k, _, _)| *k as i16).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), SUPPORTED_APIS.len());
        let advertised = api_versions_response();
        assert_eq!(advertised.api_keys.len(), SUPPORTED_APIS.len());
        for (entry, &(key, min, max)) in advertised.api_keys.iter().zip(SUPPORTED_APIS) {
            assert_eq!(
                (entry.api_key, entry.min_version, entry.max_version),
                (key as i16, min, max)
            );
        }
    }

    #[test]
    fn response_header_v0_for_api_versions_v1_for_flexible() {
        let header = |api_key, api_version| RequestHeader {
            api_key,
            api_version,
            correlation_id: 0x0102_0304,
            client_id: None,
        };
        // ApiVersions v3 is flexible but its response header stays v0: no tagged-field
        // byte between correlation id and body. Body v3 starts with error_code 0.
        let h = header(ApiKey::ApiVersions, 3);
        let bytes = encode_response(&h, &api_versions_response().into()).unwrap();
        assert_eq!(&bytes[4..8], &[1, 2, 3, 4]);
        assert_eq!(&bytes[8..10], &[0, 0]);
        // Metadata v9 (flexible): header v1, an empty tagged-field section (0) follows.
        let h = header(ApiKey::Metadata, 9);
        let bytes = encode_response(&h, &m::MetadataResponse::default().into()).unwrap();
        assert_eq!(&bytes[4..9], &[1, 2, 3, 4, 0]);
        let size = i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(size, bytes.len() - 4);
    }

    #[test]
    fn encode_response_refuses_mismatch_and_version_only_fields() {
        let h = RequestHeader {
            api_key: ApiKey::Metadata,
            api_version: 1,
            correlation_id: 1,
            client_id: None,
        };
        let err = encode_response(&h, &m::FetchResponse::default().into()).unwrap_err();
        assert!(matches!(err, EncodeError::ApiKeyMismatch { .. }));
        // cluster_authorized_operations exists only in Metadata v8-10.
        let mut body = m::MetadataResponse::default();
        body.cluster_authorized_operations = 0;
        let mut dst = BytesMut::from(&b"keep"[..]);
        let err = encode_response_into(&h, &body.into(), &mut dst).unwrap_err();
        assert!(matches!(err, EncodeError::Message { .. }), "{err}");
        assert_eq!(
            &dst[..],
            b"keep",
            "failed encode leaves the buffer as it was"
        );
    }

    #[test]
    fn unsupported_version_carries_correlation_id() {
        for (api_key, version) in [
            (ApiKey::Produce, 2),
            (ApiKey::Produce, 99),
            (ApiKey::Fetch, -1),
        ] {
            let mut frame = BytesMut::new();
            frame.put_i16(api_key as i16);
            frame.put_i16(version);
            frame.put_i32(0x5eed);
            frame.put_i16(-1);
            let err = decode_request(frame.freeze()).unwrap_err();
            assert_eq!(
                err,
                RequestError::UnsupportedVersion {
                    api_key,
                    api_version: version,
                    correlation_id: 0x5eed
                }
            );
            assert_eq!(err.correlation_id(), Some(0x5eed));
            assert_eq!(err.response(), None, "only ApiVersions is answered");
        }
    }

    #[test]
    fn unknown_and_unimplemented_api_keys() {
        for api_key in [
            9999i16,
            -1,
            ApiKey::AlterPartition as i16,
            ApiKey::Vote as i16,
        ] {
            let mut frame = BytesMut::new();
            frame.put_i16(api_key);
            frame.put_i16(0);
            frame.put_i32(77);
            let err = decode_request(frame.freeze()).unwrap_err();
            assert_eq!(
                err,
                RequestError::UnknownApiKey {
                    api_key,
                    correlation_id: 77
                }
            );
            assert_eq!(err.response(), None);
        }
        assert_eq!(
            decode_request(Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0])),
            Err(RequestError::TooShort { len: 7 })
        );
    }

    #[test]
    fn kip511_fallback_is_a_v0_api_versions_response() {
        // ApiVersions v5 from a newer client: the body format is unknown to us and is
        // never parsed.
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(5);
        frame.put_i32(123);
        frame.put_slice(b"\x00\x03abc\x00whatever");
        let err = decode_request(frame.freeze()).unwrap_err();
        assert!(matches!(
            err,
            RequestError::UnsupportedVersion { api_version: 5, .. }
        ));
        let mut wire = BytesMut::from(&err.response().unwrap()[..]);
        let frame = FrameDecoder::default().decode(&mut wire).unwrap().unwrap();
        assert!(wire.is_empty());

        let mut body = frame;
        let header = m::ResponseHeader::decode(&mut body, 0).unwrap();
        assert_eq!(header.correlation_id, 123);
        let response = m::ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert!(body.is_empty(), "exactly a v0 body");
        assert_eq!(response.error_code, UNSUPPORTED_VERSION);
        assert_eq!(
            UNSUPPORTED_VERSION,
            kafka_protocol::ResponseError::UnsupportedVersion.code()
        );
        let own = response
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16);
        let own = own.unwrap();
        assert_eq!((own.min_version, own.max_version), (0, 4));
        assert_eq!(response.api_keys.len(), SUPPORTED_APIS.len());
    }

    #[test]
    fn truncated_frames_never_panic_and_never_decode() {
        let batch = crate::record_batch::builder::batch_of_values(0, 3, b"value");
        let frames = [
            api_versions_v3(),
            metadata_v12().1,
            produce_v9(Bytes::from(batch)).1,
            raw_request(ApiKey::Fetch, 12, 1, &m::FetchRequest::default()),
            raw_request(ApiKey::Metadata, 0, 1, &m::MetadataRequest::default()),
        ];
        for frame in frames {
            assert!(decode_request(frame.clone()).is_ok());
            for len in 0..frame.len() {
                assert!(
                    decode_request(frame.slice(..len)).is_err(),
                    "prefix of {len} bytes decoded"
                );
            }
        }
    }

    /// A Metadata v0 request (header with null client id) declaring `count` topics and
    /// carrying none.
    fn metadata_v0_claiming(count: i32) -> Bytes {
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::Metadata as i16);
        frame.put_i16(0);
        frame.put_i32(9);
        frame.put_i16(-1);
        frame.put_i32(count);
        frame.freeze()
    }

    /// Whether kafka-protocol refuses an array count above the bytes remaining before
    /// allocating (the patch in the module docs). Probed with a count whose allocation is
    /// harmless (64 Ki topics, a few MB) even where the patch is missing.
    fn kafka_protocol_bounds_array_counts() -> bool {
        match decode_request(metadata_v0_claiming(1 << 16)) {
            Err(RequestError::MalformedBody { reason, .. }) => reason.contains("exceeds"),
            _ => false,
        }
    }

    const UNPATCHED: &str = "kafka-protocol allocates array capacity from untrusted counts; \
        build it with the bounded-allocation patch (see the api module docs)";

    /// The hazard in the module docs: 10 bytes declaring 2^31-1 topics. With
    /// kafka-protocol as published decoding this aborts the process ("memory allocation
    /// of 154618822584 bytes failed"); patched it is an ordinary decode error.
    #[test]
    fn oversized_array_count_is_an_error() {
        assert!(kafka_protocol_bounds_array_counts(), "{UNPATCHED}");
        let err = decode_request(metadata_v0_claiming(i32::MAX)).unwrap_err();
        assert!(
            matches!(
                err,
                RequestError::MalformedBody {
                    correlation_id: 9,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// A header for a supported API and version, then arbitrary bytes.
    fn supported_header() -> impl Strategy<Value = (ApiKey, i16)> {
        (0..SUPPORTED_APIS.len()).prop_flat_map(|i| {
            let (key, min, max) = SUPPORTED_APIS[i];
            (Just(key), min..=max)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(Bytes::from(data));
        }

        #[test]
        fn random_bodies_never_panic(
            (api_key, version) in supported_header(),
            with_client_id in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            prop_assert!(kafka_protocol_bounds_array_counts(), "{}", UNPATCHED);
            let mut frame = BytesMut::new();
            frame.put_i16(api_key as i16);
            frame.put_i16(version);
            frame.put_i32(1);
            // Often a well-formed rest of header, so the body decoder gets the bytes.
            if with_client_id {
                frame.put_i16(-1);
                if api_key.request_header_version(version) >= 2 {
                    frame.put_u8(0);
                }
            }
            frame.put_slice(&body);
            match decode_request(frame.freeze()) {
                Ok(req) => prop_assert_eq!(req.body.api_key(), api_key),
                Err(e) => prop_assert_eq!(e.correlation_id(), Some(1)),
            }
        }
    }
}
