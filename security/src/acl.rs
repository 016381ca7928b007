//! ACLs with the semantics of Kafka's `StandardAuthorizer`: bindings of a resource
//! pattern (literal or prefixed) to a principal, host, operation and permission, the
//! filters CreateAcls, DescribeAcls and DeleteAcls use, and the decision for one action.
//!
//! The codes are Kafka's wire codes (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType`), so the front end maps requests without a table of its own.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The one name a CLUSTER resource has (Kafka's `CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The resource name and principal that match every name (`*`, `User:*`).
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The operations an ACL on this type can grant, as Kafka's `AclEntry.supportedOperations`
    /// lists them: what the authorized-operations bit fields (KIP-430) are made of.
    pub fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }

    /// kafka-acls.sh's and Kafka's `toString` name.
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::Cluster => "CLUSTER",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
            ResourceType::DelegationToken => "DELEGATION_TOKEN",
            ResourceType::User => "USER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclOperation {
    All,
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
    CreateTokens,
    DescribeTokens,
    TwoPhaseCommit,
}

impl AclOperation {
    pub const ALL: [AclOperation; 14] = [
        AclOperation::All,
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
        AclOperation::CreateTokens,
        AclOperation::DescribeTokens,
        AclOperation::TwoPhaseCommit,
    ];

    pub fn code(self) -> i8 {
        match self {
            AclOperation::All => 2,
            AclOperation::Read => 3,
            AclOperation::Write => 4,
            AclOperation::Create => 5,
            AclOperation::Delete => 6,
            AclOperation::Alter => 7,
            AclOperation::Describe => 8,
            AclOperation::ClusterAction => 9,
            AclOperation::DescribeConfigs => 10,
            AclOperation::AlterConfigs => 11,
            AclOperation::IdempotentWrite => 12,
            AclOperation::CreateTokens => 13,
            AclOperation::DescribeTokens => 14,
            AclOperation::TwoPhaseCommit => 15,
        }
    }

    pub fn from_code(code: i8) -> Option<AclOperation> {
        AclOperation::ALL.into_iter().find(|o| o.code() == code)
    }

    /// Kafka's name (`DESCRIBE_CONFIGS`), as kafka-acls.sh prints it.
    pub fn name(self) -> &'static str {
        match self {
            AclOperation::All => "ALL",
            AclOperation::Read => "READ",
            AclOperation::Write => "WRITE",
            AclOperation::Create => "CREATE",
            AclOperation::Delete => "DELETE",
            AclOperation::Alter => "ALTER",
            AclOperation::Describe => "DESCRIBE",
            AclOperation::ClusterAction => "CLUSTER_ACTION",
            AclOperation::DescribeConfigs => "DESCRIBE_CONFIGS",
            AclOperation::AlterConfigs => "ALTER_CONFIGS",
            AclOperation::IdempotentWrite => "IDEMPOTENT_WRITE",
            AclOperation::CreateTokens => "CREATE_TOKENS",
            AclOperation::DescribeTokens => "DESCRIBE_TOKENS",
            AclOperation::TwoPhaseCommit => "TWO_PHASE_COMMIT",
        }
    }

    /// An ALLOW ACL for `self` also allows `wanted`: ALL allows everything, READ,
    /// WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    /// Implication never applies to DENY ACLs (a DENY for READ does not deny DESCRIBE).
    fn allows(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

impl fmt::Display for AclOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }
}

/// One ACL, as CreateAcls carries it and the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice` or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(pattern=ResourcePattern(resourceType={}, name={}, patternType={}), entry=(principal={}, host={}, operation={}, permissionType={}))",
            self.resource_type.name(),
            self.resource_name,
            self.pattern_type.name(),
            self.principal,
            self.host,
            self.operation.name(),
            self.permission.name()
        )
    }
}

/// Why CreateAcls refuses a binding (INVALID_REQUEST, with Kafka's messages).
pub fn validate(binding: &AclBinding) -> Result<(), String> {
    if binding.resource_name.is_empty() {
        return Err("Invalid empty resource name".into());
    }
    if binding.resource_type == ResourceType::Cluster && binding.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    match binding.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => {
            return Err(format!(
                "expected a string in format principalType:principalName but got {}",
                binding.principal
            ))
        }
    }
    if binding.host.is_empty() {
        return Err("Invalid empty host".into());
    }
    Ok(())
}

/// A filter's pattern type: a binding's own, or ANY, or MATCH (every binding that would
/// apply to the filter's literal name: equal, the wildcard, or a prefix of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    Any,
    Match,
    Is(PatternType),
}

/// DescribeAcls' and DeleteAcls' filter: `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub const ANY: AclFilter = AclFilter {
        resource_type: None,
        resource_name: None,
        pattern: PatternFilter::Any,
        principal: None,
        host: None,
        operation: None,
        permission: None,
    };

    /// Kafka's `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches`.
    pub fn matches(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        if let PatternFilter::Is(p) = self.pattern {
            if p != b.pattern_type {
                return false;
            }
        }
        let name_matches = match (&self.resource_name, self.pattern) {
            (None, _) => true,
            (Some(name), PatternFilter::Match) => match b.pattern_type {
                PatternType::Literal => *name == b.resource_name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
            },
            (Some(name), _) => *name == b.resource_name,
        };
        name_matches
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// What the ACLs say about one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No ACL names this resource at all (for any principal or operation): the
    /// authorizer's `allow.everyone.if.no.acl.found` decides.
    NoAcls,
}

/// The ACLs in force, kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acls {
    bindings: BTreeSet<AclBinding>,
}

impl Acls {
    pub fn new(bindings: impl IntoIterator<Item = AclBinding>) -> Acls {
        Acls {
            bindings: bindings.into_iter().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter()
    }

    /// Add a binding; false if it was there already (creating it again is not an error).
    pub fn insert(&mut self, binding: AclBinding) -> bool {
        self.bindings.insert(binding)
    }

    /// Remove every binding the filter matches, and return them.
    pub fn remove_matching(&mut self, filter: &AclFilter) -> Vec<AclBinding> {
        let removed: Vec<AclBinding> = self
            .bindings
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect();
        for b in &removed {
            self.bindings.remove(b);
        }
        removed
    }

    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings.iter().filter(move |b| filter.matches(b))
    }

    /// The ACLs' answer for `principal` (`User:alice`) connecting from `host` doing
    /// `operation` on the literal resource (`resource_type`, `name`): any matching DENY
    /// wins; else any matching ALLOW (with implied operations); else NoAcls if no ACL
    /// names the resource, and Deny if some do (for other principals or operations).
    pub fn decide(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        let mut names_resource = false;
        let mut allowed = false;
        for b in self.for_resource(resource_type, name) {
            names_resource = true;
            if b.principal != principal && b.principal != WILDCARD_PRINCIPAL {
                continue;
            }
            if b.host != WILDCARD && b.host != host {
                continue;
            }
            match b.permission {
                Permission::Deny => {
                    if b.operation == AclOperation::All || b.operation == operation {
                        return Decision::Deny;
                    }
                }
                Permission::Allow => allowed |= b.operation.allows(operation),
            }
        }
        if allowed {
            Decision::Allow
        } else if names_resource {
            Decision::Deny
        } else {
            Decision::NoAcls
        }
    }

    /// Bindings whose pattern applies to the literal resource: the same name, the
    /// wildcard, or a prefix of it.
    fn for_resource<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings.iter().filter(move |b| {
            b.resource_type == resource_type
                && match b.pattern_type {
                    PatternType::Literal => b.resource_name == name || b.resource_name == WILDCARD,
                    PatternType::Prefixed => name.starts_with(b.resource_name.as_str()),
                }
        })
    }

    /// Kafka's `authorizeByResourceType`: whether `principal` may do `operation` on at
    /// least one resource of the type (InitProducerId uses it for WRITE on any topic).
    /// A wildcard DENY refuses; an ALLOW counts unless a DENY for the same literal
    /// name, or a DENY prefix covering it, dominates it.
    pub fn allows_any_of_type(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let mut deny_literal = BTreeSet::new();
        let mut deny_prefix = Vec::new();
        let mut allow = Vec::new();
        for b in &self.bindings {
            if b.resource_type != resource_type
                || (b.host != WILDCARD && b.host != host)
                || (b.principal != principal && b.principal != WILDCARD_PRINCIPAL)
                || (b.operation != operation && b.operation != AclOperation::All)
            {
                continue;
            }
            match (b.permission, b.pattern_type) {
                (Permission::Deny, PatternType::Literal) if b.resource_name == WILDCARD => {
                    return false
                }
                (Permission::Deny, PatternType::Literal) => {
                    deny_literal.insert(b.resource_name.as_str());
                }
                (Permission::Deny, PatternType::Prefixed) => {
                    deny_prefix.push(b.resource_name.as_str())
                }
                (Permission::Allow, PatternType::Literal) if b.resource_name == WILDCARD => {
                    return true
                }
                (Permission::Allow, p) => allow.push((p, b.resource_name.as_str())),
            }
        }
        allow.into_iter().any(|(pattern, name)| {
            let dominated = deny_prefix.iter().any(|d| name.starts_with(d))
                || (pattern == PatternType::Literal && deny_literal.contains(name));
            !dominated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        t: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: AclOperation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: t,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission,
        }
    }

    use AclOperation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn deny_overrides_allow_and_implied_operations_come_only_from_allow() {
        let acls = Acls::new([
            acl(Topic, "orders", Literal, "User:alice", Read, Allow),
            acl(Topic, "orders", Literal, "User:alice", Write, Deny),
            acl(Topic, "pay", Prefixed, "User:*", AlterConfigs, Allow),
            acl(Topic, "audit", Literal, "User:bob", Read, Deny),
        ]);
        let d = |p: &str, op, name: &str| acls.decide(p, "10.0.0.1", op, Topic, name);
        assert_eq!(d("User:alice", Read, "orders"), Decision::Allow);
        // READ implies DESCRIBE.
        assert_eq!(d("User:alice", Describe, "orders"), Decision::Allow);
        assert_eq!(d("User:alice", Write, "orders"), Decision::Deny);
        // ACLs name the resource, none for bob: denied, not "no ACL".
        assert_eq!(d("User:bob", Read, "orders"), Decision::Deny);
        // A prefixed wildcard-principal ALTER_CONFIGS implies DESCRIBE_CONFIGS.
        assert_eq!(
            d("User:carol", DescribeConfigs, "payments"),
            Decision::Allow
        );
        assert_eq!(d("User:carol", Read, "payments"), Decision::Deny);
        // A DENY for READ does not deny DESCRIBE; nothing allows it either.
        assert_eq!(d("User:bob", Describe, "audit"), Decision::Deny);
        assert_eq!(d("User:bob", Read, "other"), Decision::NoAcls);
    }

    #[test]
    fn literal_wildcard_and_host_matching() {
        let mut host_acl = acl(Group, "g", Literal, "User:alice", Read, Allow);
        host_acl.host = "10.0.0.1".into();
        let acls = Acls::new([
            host_acl,
            acl(Group, "*", Literal, "User:ops", All, Allow),
            acl(Group, "g*", Literal, "User:eve", Read, Allow),
        ]);
        assert_eq!(
            acls.decide("User:alice", "10.0.0.1", Read, Group, "g"),
            Decision::Allow
        );
        assert_eq!(
            acls.decide("User:alice", "10.0.0.2", Read, Group, "g"),
            Decision::Deny
        );
        assert_eq!(
            acls.decide("User:ops", "1.2.3.4", Delete, Group, "anything"),
            Decision::Allow
        );
        // "g*" is a literal name, not a pattern.
        assert_eq!(
            acls.decide("User:eve", "1.2.3.4", Read, Group, "gx"),
            Decision::Deny
        );
    }

    #[test]
    fn filters_match_as_kafka_s_do() {
        let b = acl(Topic, "pay", Prefixed, "User:alice", Read, Allow);
        let w = acl(Topic, "*", Literal, "User:alice", Read, Allow);
        let l = acl(Topic, "payments", Literal, "User:alice", Read, Allow);
        let matching = AclFilter {
            resource_type: Some(Topic),
            resource_name: Some("payments".into()),
            pattern: PatternFilter::Match,
            ..AclFilter::ANY
        };
        assert!(matching.matches(&b) && matching.matches(&w) && matching.matches(&l));
        let exact = AclFilter {
            pattern: PatternFilter::Any,
            ..matching.clone()
        };
        assert!(!exact.matches(&b) && !exact.matches(&w) && exact.matches(&l));
        let prefixed = AclFilter {
            resource_name: None,
            pattern: PatternFilter::Is(Prefixed),
            ..matching
        };
        assert!(prefixed.matches(&b) && !prefixed.matches(&l));
        let mut acls = Acls::new([b.clone(), w, l]);
        assert_eq!(acls.remove_matching(&prefixed), vec![b]);
        assert_eq!(acls.len(), 2);
    }

    #[test]
    fn by_resource_type_follows_kafka() {
        let acls = Acls::new([
            acl(Topic, "a", Literal, "User:p", Write, Allow),
            acl(Topic, "a", Literal, "User:p", Write, Deny),
            acl(Topic, "b", Prefixed, "User:p", Write, Allow),
            acl(Topic, "", Prefixed, "User:q", Write, Deny),
            acl(Topic, "c", Literal, "User:q", Write, Allow),
        ]);
        assert!(acls.allows_any_of_type("User:p", "h", Write, Topic));
        assert!(!acls.allows_any_of_type("User:q", "h", Write, Topic));
        assert!(!acls.allows_any_of_type("User:r", "h", Write, Topic));
    }

    #[test]
    fn validation_uses_kafka_s_messages() {
        let mut b = acl(Cluster, "other", Literal, "User:a", Alter, Allow);
        assert!(validate(&b).unwrap_err().contains("kafka-cluster"));
        b.resource_name = CLUSTER_NAME.into();
        assert!(validate(&b).is_ok());
        b.principal = "alice".into();
        assert!(validate(&b).is_err());
    }
}
