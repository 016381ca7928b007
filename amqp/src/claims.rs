//! What a connection may do: its SASL login, and the CBS tokens put on it. A token is
//! a claim on an audience until its expiry; a put-token for the same audience replaces
//! the old one, which is how the SDKs renew.

use std::sync::Mutex;

use runnel_security::sas::SasGrant;

use crate::address;
use crate::sasl::Login;

/// The right a link needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Send,
    Listen,
    Manage,
}

#[derive(Debug, Clone)]
struct Claim {
    audience: String,
    grant: SasGrant,
    expires_at: u64,
}

/// At most this many audiences per connection; the SDKs put one per link.
const MAX_CLAIMS: usize = 1000;

#[derive(Debug)]
pub struct Claims {
    login: Login,
    tokens: Mutex<Vec<Claim>>,
}

fn grant_allows(grant: &SasGrant, hub: &str, right: Right) -> bool {
    if grant
        .hub
        .as_deref()
        .is_some_and(|h| !h.eq_ignore_ascii_case(hub))
    {
        return false;
    }
    let r = grant.rights.normalized();
    match right {
        Right::Send => r.send,
        Right::Listen => r.listen,
        Right::Manage => r.manage,
    }
}

impl Claims {
    pub fn new(login: Login) -> Claims {
        Claims {
            login,
            tokens: Mutex::new(Vec::new()),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Vec<Claim>> {
        // A claim list is whole after any push or retain; a panic elsewhere left it so.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record a verified token. False when the connection holds too many.
    pub fn put(&self, audience: &str, grant: SasGrant, expires_at: u64) -> bool {
        let mut tokens = self.tokens();
        tokens.retain(|c| !c.audience.eq_ignore_ascii_case(audience));
        if tokens.len() >= MAX_CLAIMS {
            return false;
        }
        tokens.push(Claim {
            audience: audience.to_string(),
            grant,
            expires_at,
        });
        true
    }

    /// Until when (Unix seconds) `right` on `entity` (an address within `hub`) is
    /// allowed: `u64::MAX` for a PLAIN login that covers it, the latest expiry of a
    /// covering token otherwise, `None` when nothing allows it now.
    pub fn allowed_until(&self, entity: &str, hub: &str, right: Right, now: u64) -> Option<u64> {
        if let Login::Policy(grant) = &self.login {
            if grant_allows(grant, hub, right) {
                return Some(u64::MAX);
            }
        }
        self.tokens()
            .iter()
            .filter(|c| c.expires_at > now)
            .filter(|c| address::covers(&c.audience, entity))
            .filter(|c| grant_allows(&c.grant, hub, right))
            .map(|c| c.expires_at)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_security::sas::Rights;

    fn grant(send: bool, listen: bool, hub: Option<&str>) -> SasGrant {
        SasGrant {
            policy: "p".into(),
            policy_hub: None,
            rights: Rights {
                send,
                listen,
                manage: false,
            },
            hub: hub.map(str::to_string),
        }
    }

    #[test]
    fn a_token_allows_its_audience_and_right_until_it_expires() {
        let c = Claims::new(Login::Anonymous);
        assert!(c.put("sb://ns/eh1", grant(true, false, Some("eh1")), 100));
        assert_eq!(c.allowed_until("eh1", "eh1", Right::Send, 50), Some(100));
        assert_eq!(c.allowed_until("eh1", "eh1", Right::Send, 100), None);
        assert_eq!(
            c.allowed_until(
                "eh1/ConsumerGroups/$Default/Partitions/0",
                "eh1",
                Right::Listen,
                50
            ),
            None
        );
        assert_eq!(c.allowed_until("eh2", "eh2", Right::Send, 50), None);
        // A renewal replaces the claim.
        assert!(c.put("SB://ns/EH1", grant(true, false, Some("eh1")), 200));
        assert_eq!(
            c.allowed_until("eh1/Partitions/1", "eh1", Right::Send, 150),
            Some(200)
        );
    }

    #[test]
    fn a_plain_login_allows_what_its_policy_does() {
        let c = Claims::new(Login::Policy(grant(false, true, None)));
        assert_eq!(
            c.allowed_until(
                "eh1/ConsumerGroups/$Default/Partitions/0",
                "eh1",
                Right::Listen,
                1
            ),
            Some(u64::MAX)
        );
        assert_eq!(c.allowed_until("eh1", "eh1", Right::Send, 1), None);
    }
}
