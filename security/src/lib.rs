//! Who a client is, sans-io: the crate turns what a connection presents (a TLS client
//! certificate's distinguished name, SASL tokens) into a [`KafkaPrincipal`], and keeps
//! the durable credentials that decision needs. It has no sockets, no tokio and no
//! Kafka message catalog, so the Kafka front end and a second one (AMQP) share it.
//!
//! - [`principal`]: `KafkaPrincipal` and `ssl.principal.mapping.rules`.
//! - [`sasl`]: one [`SaslServer`] per connection for PLAIN or SCRAM-SHA-256/512; the
//!   front end feeds it the client's tokens and sends back its challenges.
//! - [`store`]: the [`SecurityStore`] file in the data directory (SCRAM credentials
//!   today; ACLs and quotas later).
//!
//! Authorization (ACLs) is not here yet.

pub mod principal;
pub mod sasl;
pub mod store;

mod poison;

pub use principal::{KafkaPrincipal, NoMatch, SslPrincipalMapper, ANONYMOUS};
pub use sasl::{AuthError, Mechanism, Reason, SaslServer, SaslStep};
pub use store::{parse_add_scram, ScramCredentialInfo, ScramUpsert, SecurityStore};
