//! Who sent a request, and through which listener: handed to every handler, and the one
//! place requests are authorized.
//!
//! The principal comes from the connection: `User:ANONYMOUS` on PLAINTEXT, the client
//! certificate's subject on SSL with client authentication, the SASL identity on SASL
//! listeners. [`RequestContext::authorize`] allows everything until ACLs exist.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use runnel_core::listeners::SecurityProtocol;
use runnel_core::poison::or_stop;

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

/// A listener as its connections see it.
#[derive(Debug)]
pub struct ListenerInfo {
    /// `PLAINTEXT`, `SASL_SSL`, or the operator's own name.
    pub name: String,
    pub security_protocol: SecurityProtocol,
    /// What Metadata, FindCoordinator and DescribeCluster tell clients of this listener;
    /// set once the listener is bound (the bound port when the configured one is 0).
    advertised: RwLock<(String, u16)>,
}

impl ListenerInfo {
    pub fn new(name: String, security_protocol: SecurityProtocol) -> ListenerInfo {
        ListenerInfo {
            name,
            security_protocol,
            advertised: RwLock::new((String::new(), 0)),
        }
    }

    pub fn set_advertised(&self, host: String, port: u16) {
        *or_stop(self.advertised.write(), "advertised address") = (host, port);
    }

    pub fn advertised(&self) -> (String, u16) {
        or_stop(self.advertised.read(), "advertised address").clone()
    }
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The authenticated principal, as Kafka writes it (`User:alice`).
    pub principal: Arc<str>,
    pub listener: Arc<ListenerInfo>,
    pub client_id: String,
    pub peer: SocketAddr,
}

impl RequestContext {
    /// The advertised address of the listener the request came in on.
    pub fn advertised(&self) -> (String, u16) {
        self.listener.advertised()
    }

    /// The authorizer hook. Allows everything until ACLs exist.
    pub fn authorize(&self, _operation: Operation, _resource: Resource<'_>) -> bool {
        true
    }
}
