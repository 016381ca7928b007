//! SASL on the AMQP listener. The Azure SDKs log in with ANONYMOUS (or MSSBCBS, .NET's
//! name for the same) and then put a token on `$cbs`; PLAIN carries a policy name and
//! its key, or a SAS token as the password.
//!
//! fe2o3 clones the acceptor into the connection and drops it, so the outcome comes
//! back through a shared slot that the connection reads once the Open is done.

use std::sync::{Arc, OnceLock};

use fe2o3_amqp::acceptor::sasl_acceptor::SaslServerFrame;
use fe2o3_amqp::acceptor::SaslAcceptor;
use fe2o3_amqp_types::primitives::{Array, Symbol};
use fe2o3_amqp_types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};
use runnel_security::sas::{self, SasGrant};
use runnel_security::SecurityStore;

pub const MSSBCBS: &str = "MSSBCBS";
pub const ANONYMOUS: &str = "ANONYMOUS";
pub const PLAIN: &str = "PLAIN";

/// Who a connection logged in as.
#[derive(Debug, Clone)]
pub enum Login {
    /// Nothing yet: every link needs a CBS token.
    Anonymous,
    /// PLAIN with a policy's key (or token): links within the grant need no token.
    Policy(SasGrant),
}

#[derive(Clone)]
pub struct RunnelSasl {
    security: Arc<SecurityStore>,
    pub login: Arc<OnceLock<Login>>,
}

impl RunnelSasl {
    pub fn new(security: Arc<SecurityStore>) -> RunnelSasl {
        RunnelSasl {
            security,
            login: Arc::new(OnceLock::new()),
        }
    }

    fn outcome(code: SaslCode) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }

    fn plain(&self, response: &[u8]) -> Result<SasGrant, String> {
        let mut parts = response.splitn(3, |b| *b == 0);
        let (Some(_authzid), Some(user), Some(pass)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed PLAIN response".to_string());
        };
        let user = std::str::from_utf8(user).map_err(|_| "user is not UTF-8".to_string())?;
        let pass = std::str::from_utf8(pass).map_err(|_| "password is not UTF-8".to_string())?;
        let now = now_secs();
        self.security
            .with_policies(|policies| {
                if pass.starts_with("SharedAccessSignature ") {
                    sas::verify_token(policies, pass, now, None)
                } else {
                    sas::verify_key(policies, user, pass, None)
                }
            })
            .map_err(|e| e.to_string())
    }
}

impl SaslAcceptor for RunnelSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(vec![
            Symbol::from(MSSBCBS),
            Symbol::from(ANONYMOUS),
            Symbol::from(PLAIN),
        ])
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        match init.mechanism.as_str() {
            MSSBCBS | ANONYMOUS => {
                let _ = self.login.set(Login::Anonymous);
                Self::outcome(SaslCode::Ok)
            }
            PLAIN => {
                let response = init.initial_response.map(|b| b.into_vec());
                match self.plain(response.as_deref().unwrap_or_default()) {
                    Ok(grant) => {
                        tracing::debug!(policy = %grant.principal_name(), "AMQP PLAIN login");
                        let _ = self.login.set(Login::Policy(grant));
                        Self::outcome(SaslCode::Ok)
                    }
                    Err(reason) => {
                        tracing::info!(%reason, "AMQP PLAIN login failed");
                        Self::outcome(SaslCode::Auth)
                    }
                }
            }
            other => {
                tracing::info!(mechanism = %crate::address::printable(other), "unsupported SASL mechanism");
                Self::outcome(SaslCode::Auth)
            }
        }
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        // None of the mechanisms has a second step.
        Self::outcome(SaslCode::Auth)
    }
}

pub fn now_secs() -> u64 {
    (runnel_storage::now_ms().max(0) / 1000) as u64
}
