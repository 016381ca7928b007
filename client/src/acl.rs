//! ACL bindings and filters as the Admin API's CreateAcls, DescribeAcls and DeleteAcls
//! carry them, with Kafka's wire codes and names (`ResourceType`, `PatternType`,
//! `AclOperation`, `AclPermissionType`).

use std::fmt;

macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const VALUES: &'static [$name] = &[$($name::$variant,)*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            pub fn from_code(code: i8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Kafka's enum name (`IDEMPOTENT_WRITE`), as kafka-acls.sh prints it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// By Kafka's name, case-insensitively, with or without underscores
            /// (`IdempotentWrite`, `IDEMPOTENT_WRITE`, `idempotent-write`).
            pub fn parse(s: &str) -> Option<$name> {
                let squash = |s: &str| -> String {
                    s.chars()
                        .filter(|c| *c != '_' && *c != '-')
                        .flat_map(char::to_lowercase)
                        .collect()
                };
                let wanted = squash(s.trim());
                $name::VALUES.iter().copied().find(|v| squash(v.name()) == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded_enum!(
    /// What an ACL is on. `Any` only in filters.
    ResourceType {
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

coded_enum!(
    /// How a pattern's name matches. `Any` and `Match` only in filters.
    PatternType {
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

coded_enum!(
    /// What an ACL allows or denies. `Any` only in filters.
    AclOperation {
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

coded_enum!(
    /// ALLOW or DENY. `Any` only in filters.
    AclPermissionType {
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl AclOperation {
    /// Kafka's PascalCase name (`IdempotentWrite`), as kafka-acls.sh's help lists it.
    pub fn pascal_name(self) -> String {
        self.name()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_string() + &c.as_str().to_lowercase(),
                    None => String::new(),
                }
            })
            .collect()
    }
}

impl ResourceType {
    /// The operations an ACL on this type can name besides ALL (Kafka's
    /// `AclEntry.supportedOperations`).
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
            ResourceType::Any => &[],
        }
    }
}

/// The one name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// A resource pattern: type, name and how the name matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl fmt::Display for ResourcePattern {
    /// As Kafka's `ResourcePattern.toString`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type, self.name, self.pattern_type
        )
    }
}

/// Who may (or may not) do what from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessControlEntry {
    /// `User:alice`, `User:*`.
    pub principal: String,
    /// An address or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

impl fmt::Display for AccessControlEntry {
    /// As Kafka's `AccessControlEntry.toString`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal, self.host, self.operation, self.permission
        )
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

/// A filter over ACLs; `None` fields and the `Any` variants match everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermissionType,
}

impl AclBindingFilter {
    /// Every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermissionType::Any,
        }
    }

    /// Every ACL on resources the pattern filter selects.
    pub fn for_resources(
        resource_type: ResourceType,
        name: Option<String>,
        pattern_type: PatternType,
    ) -> AclBindingFilter {
        AclBindingFilter {
            resource_type,
            name,
            pattern_type,
            ..AclBindingFilter::any()
        }
    }

    /// Exactly this entry on resources the pattern filter selects.
    pub fn with_entry(mut self, entry: &AccessControlEntry) -> AclBindingFilter {
        self.principal = Some(entry.principal.clone());
        self.host = Some(entry.host.clone());
        self.operation = entry.operation;
        self.permission = entry.permission;
        self
    }

    /// Kafka's `ResourcePatternFilter.toString`.
    pub fn pattern_string(&self) -> String {
        format!(
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type,
            self.name.as_deref().unwrap_or("<any>"),
            self.pattern_type
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_text() {
        assert_eq!(
            AclOperation::parse("IdempotentWrite"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(AclOperation::parse("READ"), Some(AclOperation::Read));
        assert_eq!(
            AclOperation::parse("describe_configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(AclOperation::parse("fly"), None);
        assert_eq!(
            AclOperation::IdempotentWrite.pascal_name(),
            "IdempotentWrite"
        );
        for op in AclOperation::VALUES {
            assert_eq!(AclOperation::from_code(op.code()), Some(*op));
        }
        let p = ResourcePattern {
            resource_type: ResourceType::Topic,
            name: "orders".into(),
            pattern_type: PatternType::Literal,
        };
        assert_eq!(
            p.to_string(),
            "ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)"
        );
        let e = AccessControlEntry {
            principal: "User:alice".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermissionType::Allow,
        };
        assert_eq!(
            e.to_string(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"
        );
    }
}
