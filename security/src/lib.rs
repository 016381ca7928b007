//! Who a client is, sans-io: the crate turns what a connection presents (a TLS client
//! certificate's distinguished name, SASL tokens) into a [`KafkaPrincipal`], and keeps
//! the durable credentials that decision needs. It has no sockets, no tokio and no
//! Kafka message catalog, so the Kafka front end and a second one (AMQP) share it.
//!
//! - [`principal`]: `KafkaPrincipal` and `ssl.principal.mapping.rules`.
//! - [`sasl`]: one [`SaslServer`] per connection for PLAIN or SCRAM-SHA-256/512; the
//!   front end feeds it the client's tokens and sends back its challenges.
//! - [`store`]: the [`SecurityStore`] file in the data directory: SCRAM credentials,
//!   ACLs and shared access policies.
//! - [`acl`]: ACL bindings and filters with Kafka's `StandardAuthorizer` matching.
//! - [`sas`]: Event Hubs' shared access policies, connection strings and SAS tokens.
//! - [`authorizer`]: the one decision for every request, over ACLs or a SAS grant.

pub mod acl;
pub mod authorizer;
pub mod principal;
pub mod sas;
pub mod sasl;
pub mod store;

mod poison;

pub use principal::{KafkaPrincipal, NoMatch, SslPrincipalMapper, ANONYMOUS};
pub use sasl::{AuthError, Mechanism, Reason, SaslServer, SaslStep};
pub use store::{parse_add_scram, ScramCredentialInfo, ScramUpsert, SecurityStore};
