//! Who sent a request, and through which listener: handed to every handler, and the one
//! place requests are authorized.
//!
//! The principal comes from the connection: `User:ANONYMOUS` on PLAINTEXT, the client
//! certificate's subject on SSL with client authentication, the SASL identity on SASL
//! listeners. [`RequestContext::authorize`] is the one check every handler makes,
//! through the broker's [`Authorizer`].

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use runnel_core::listeners::SecurityProtocol;
use runnel_core::poison::or_stop;
use runnel_security::acl::{ResourceType, CLUSTER_NAME};
use runnel_security::authorizer::{Authorizer, Identity};
use runnel_security::sas::SasGrant;

/// Kafka's principal for an unauthenticated connection.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// What a request is allowed to do, in Kafka's ACL vocabulary.
pub use runnel_security::acl::AclOperation as Operation;

/// The resource an operation applies to, in Kafka's ACL vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
    Cluster,
    TransactionalId(&'a str),
}

impl Resource<'_> {
    fn parts(&self) -> (ResourceType, &str) {
        match *self {
            Resource::Topic(name) => (ResourceType::Topic, name),
            Resource::Group(name) => (ResourceType::Group, name),
            Resource::Cluster => (ResourceType::Cluster, CLUSTER_NAME),
            Resource::TransactionalId(name) => (ResourceType::TransactionalId, name),
        }
    }
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
    /// A shared-access-policy login's rights and hub (Event Hubs connection strings).
    pub sas: Option<Arc<SasGrant>>,
    pub authorizer: Arc<Authorizer>,
}

impl RequestContext {
    /// The advertised address of the listener the request came in on.
    pub fn advertised(&self) -> (String, u16) {
        self.listener.advertised()
    }

    /// May this request's principal do `operation` on `resource`?
    pub fn authorize(&self, operation: Operation, resource: Resource<'_>) -> bool {
        if self.open() {
            return true;
        }
        let (resource_type, name) = resource.parts();
        let host = self.peer.ip().to_string();
        self.authorizer
            .authorize(&self.identity(&host), operation, resource_type, name)
    }

    /// Kafka's `authorizeByResourceType`: `operation` on at least one resource of
    /// the type (an idempotent InitProducerId's WRITE on any topic).
    pub fn authorize_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        if self.open() {
            return true;
        }
        let host = self.peer.ip().to_string();
        self.authorizer
            .authorize_any_of_type(&self.identity(&host), operation, resource_type)
    }

    /// KIP-430's authorized-operations bit field for a resource.
    pub fn authorized_operations(&self, resource: Resource<'_>) -> i32 {
        let (resource_type, name) = resource.parts();
        let host = self.peer.ip().to_string();
        self.authorizer
            .authorized_operations(&self.identity(&host), resource_type, name)
    }

    /// Nothing to check: no ACLs and no SAS login (the zero-config default).
    fn open(&self) -> bool {
        self.sas.is_none() && !self.authorizer.acls_enabled()
    }

    fn identity<'a>(&'a self, host: &'a str) -> Identity<'a> {
        Identity {
            principal: &self.principal,
            host,
            sas: self.sas.as_deref(),
        }
    }
}
