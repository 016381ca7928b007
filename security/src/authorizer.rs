//! The one decision every request goes through: may this identity do this operation on
//! this resource. A shared-access-policy login is decided by its rights alone (as in
//! Event Hubs); any other principal by the ACLs, with Kafka's `StandardAuthorizer`
//! rules: `super.users` may do anything, a DENY wins, an ALLOW (with implied
//! operations) allows, and a resource no ACL names follows
//! `allow.everyone.if.no.acl.found`. Without an authorizer configured
//! (`authorizer.class.name` empty, Kafka's default) every principal may do everything.

use std::collections::HashSet;
use std::sync::Arc;

use crate::acl::{AclOperation, Decision, ResourceType};
use crate::sas::SasGrant;
use crate::store::SecurityStore;

/// The class name Kafka configures its ACL authorizer with; Runnel accepts it (and the
/// older `kafka.security.authorizer.AclAuthorizer`) to turn ACLs on.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
pub const ACL_AUTHORIZER: &str = "kafka.security.authorizer.AclAuthorizer";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// ACLs are enforced (an authorizer is configured).
    pub acls_enabled: bool,
    /// `super.users`: `User:admin;User:ops`.
    pub super_users: HashSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// From the settings' values; an unknown class name is refused.
    pub fn new(
        class_name: &str,
        super_users: &str,
        allow_everyone_if_no_acl_found: bool,
    ) -> Result<AuthorizerConfig, String> {
        let acls_enabled = match class_name.trim() {
            "" => false,
            STANDARD_AUTHORIZER | ACL_AUTHORIZER => true,
            other => {
                return Err(format!(
                    "authorizer.class.name: {other} is not an authorizer Runnel has; use {STANDARD_AUTHORIZER} or leave it empty"
                ))
            }
        };
        let super_users = super_users
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                crate::principal::KafkaPrincipal::parse(s)
                    .map(|p| p.to_string())
                    .map_err(|e| format!("super.users: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AuthorizerConfig {
            acls_enabled,
            super_users,
            allow_everyone_if_no_acl_found,
        })
    }
}

/// Who is asking: the principal, the client's address, and a SAS login's grant.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub principal: &'a str,
    pub host: &'a str,
    pub sas: Option<&'a SasGrant>,
}

#[derive(Debug)]
pub struct Authorizer {
    config: AuthorizerConfig,
    store: Arc<SecurityStore>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig, store: Arc<SecurityStore>) -> Authorizer {
        Authorizer { config, store }
    }

    /// ACLs are enforced: the ACL APIs work (they answer SECURITY_DISABLED otherwise).
    pub fn acls_enabled(&self) -> bool {
        self.config.acls_enabled
    }

    pub fn store(&self) -> &Arc<SecurityStore> {
        &self.store
    }

    pub fn authorize(
        &self,
        who: &Identity<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if let Some(grant) = who.sas {
            return grant.allows(operation, resource_type, name);
        }
        if !self.config.acls_enabled || self.config.super_users.contains(who.principal) {
            return true;
        }
        match self
            .store
            .with_acls(|acls| acls.decide(who.principal, who.host, operation, resource_type, name))
        {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::NoAcls => self.config.allow_everyone_if_no_acl_found,
        }
    }

    /// Whether the identity may do `operation` on some resource of the type (Kafka's
    /// `authorizeByResourceType`, which an idempotent InitProducerId falls back to).
    pub fn authorize_any_of_type(
        &self,
        who: &Identity<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if let Some(grant) = who.sas {
            return match &grant.hub {
                Some(hub) => grant.allows(operation, resource_type, hub),
                None => grant.allows(operation, resource_type, ""),
            };
        }
        if !self.config.acls_enabled || self.config.super_users.contains(who.principal) {
            return true;
        }
        // Kafka first asks for a name no ACL is likely to use, so that the
        // no-ACL default and super users apply.
        if self.authorize(who, operation, resource_type, "hardcode") {
            return true;
        }
        self.store.with_acls(|acls| {
            acls.allows_any_of_type(who.principal, who.host, operation, resource_type)
        })
    }

    /// KIP-430's bit field for a resource: bit `code` set for each operation of the
    /// resource type the identity may do.
    pub fn authorized_operations(
        &self,
        who: &Identity<'_>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        resource_type
            .operations()
            .iter()
            .filter(|op| self.authorize(who, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}
