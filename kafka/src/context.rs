//! Who sent a request, and through which listener: handed to every handler, and the one
//! place requests are authorized.
//!
//! There is no authentication yet, so every request comes from `User:ANONYMOUS` on the
//! PLAINTEXT listener and [`RequestContext::authorize`] allows everything. TLS, SASL and
//! ACLs fill these in without touching the handlers' signatures.

use std::net::SocketAddr;

/// Kafka's principal for an unauthenticated connection.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// What a request is allowed to do, in Kafka's ACL vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

/// The resource an operation applies to, in Kafka's ACL vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
    Cluster,
    TransactionalId(&'a str),
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The authenticated principal, as Kafka writes it (`User:alice`).
    pub principal: String,
    /// The listener's name (`PLAINTEXT`).
    pub listener: &'static str,
    pub client_id: String,
    pub peer: SocketAddr,
}

impl RequestContext {
    pub fn anonymous(peer: SocketAddr, client_id: Option<&str>) -> RequestContext {
        RequestContext {
            principal: ANONYMOUS.to_string(),
            listener: "PLAINTEXT",
            client_id: client_id.unwrap_or("").to_string(),
            peer,
        }
    }

    /// The authorizer hook. Allows everything until ACLs exist.
    pub fn authorize(&self, _operation: Operation, _resource: Resource<'_>) -> bool {
        true
    }
}
