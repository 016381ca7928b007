//! CreateAcls, DescribeAcls and DeleteAcls (KIP-140) over the security store, as Kafka's
//! `AclApis` answers them: ALTER on the cluster to change ACLs, DESCRIBE to list them,
//! SECURITY_DISABLED without an authorizer, INVALID_REQUEST for a binding or filter
//! Kafka would refuse. A change is durable before it is acknowledged.

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages as m;
use kafka_protocol::protocol::StrBytes;
use runnel_security::acl::{
    self, AclBinding, AclFilter, AclOperation, PatternFilter, PatternType, Permission, ResourceType,
};

use super::str_bytes;
use crate::context::{Operation, RequestContext, Resource};
use crate::kafka_broker::KafkaBroker;

// Kafka's messages when no authorizer is configured.
const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";
const NO_AUTHORIZER_SHORT: &str = "No Authorizer is configured.";

fn pattern_type(code: i8) -> Option<PatternType> {
    match code {
        3 => Some(PatternType::Literal),
        4 => Some(PatternType::Prefixed),
        _ => None,
    }
}

fn permission(code: i8) -> Option<Permission> {
    match code {
        2 => Some(Permission::Deny),
        3 => Some(Permission::Allow),
        _ => None,
    }
}

/// A CreateAcls entry as a binding, or Kafka's INVALID_REQUEST message.
fn binding(c: &m::create_acls_request::AclCreation) -> Result<AclBinding, String> {
    let resource_type = ResourceType::from_code(c.resource_type)
        .ok_or_else(|| format!("Invalid resourceType {}", c.resource_type))?;
    let pattern_type = pattern_type(c.resource_pattern_type)
        .ok_or_else(|| format!("Invalid patternType {}", c.resource_pattern_type))?;
    let operation = AclOperation::from_code(c.operation)
        .ok_or_else(|| format!("Invalid operation {}", c.operation))?;
    let permission = permission(c.permission_type)
        .ok_or_else(|| format!("Invalid permissionType {}", c.permission_type))?;
    let b = AclBinding {
        resource_type,
        resource_name: c.resource_name.to_string(),
        pattern_type,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation,
        permission,
    };
    acl::validate(&b)?;
    Ok(b)
}

/// A DescribeAcls or DeleteAcls filter; codes 0 (UNKNOWN) are refused as Kafka does.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission_type: i8,
) -> Result<AclFilter, String> {
    let resource_type = match resource_type {
        1 => None,
        code => Some(
            ResourceType::from_code(code)
                .ok_or_else(|| format!("Invalid resourceType filter {code}"))?,
        ),
    };
    let pattern = match pattern {
        1 => PatternFilter::Any,
        2 => PatternFilter::Match,
        code => PatternFilter::Is(
            pattern_type(code).ok_or_else(|| format!("Invalid patternType filter {code}"))?,
        ),
    };
    let operation = match operation {
        1 => None,
        code => Some(
            AclOperation::from_code(code)
                .ok_or_else(|| format!("Invalid operation filter {code}"))?,
        ),
    };
    let permission = match permission_type {
        1 => None,
        code => {
            Some(permission(code).ok_or_else(|| format!("Invalid permissionType filter {code}"))?)
        }
    };
    Ok(AclFilter {
        resource_type,
        resource_name: name.as_ref().map(|n| n.to_string()),
        pattern,
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation,
        permission,
    })
}

pub fn describe_acls(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeAclsRequest,
) -> m::DescribeAclsResponse {
    let failed = |code: E, message: &str| {
        m::DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !ctx.authorize(Operation::Describe, Resource::Cluster) {
        return m::DescribeAclsResponse::default()
            .with_error_code(E::ClusterAuthorizationFailed.code());
    }
    if !broker.authorizer.acls_enabled() {
        return failed(E::SecurityDisabled, NO_AUTHORIZER);
    }
    let f = match filter(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => return failed(E::InvalidRequest, &why),
    };
    // Bindings sorted by resource come out grouped, one resource entry each.
    let mut resources: Vec<m::describe_acls_response::DescribeAclsResource> = Vec::new();
    broker.security.with_acls(|acls| {
        for b in acls.matching(&f) {
            let same = resources.last().is_some_and(|r| {
                r.resource_type == b.resource_type.code()
                    && *r.resource_name == *b.resource_name
                    && r.pattern_type == b.pattern_type.code()
            });
            if !same {
                resources.push(
                    m::describe_acls_response::DescribeAclsResource::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(str_bytes(b.resource_name.clone()))
                        .with_pattern_type(b.pattern_type.code()),
                );
            }
            if let Some(r) = resources.last_mut() {
                r.acls.push(
                    m::describe_acls_response::AclDescription::default()
                        .with_principal(str_bytes(b.principal.clone()))
                        .with_host(str_bytes(b.host.clone()))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code()),
                );
            }
        }
    });
    m::DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(resources)
}

pub async fn create_acls(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::CreateAclsRequest,
) -> m::CreateAclsResponse {
    let result = |code: Option<E>, message: Option<String>| {
        m::create_acls_response::AclCreationResult::default()
            .with_error_code(code.map_or(0, |c| c.code()))
            .with_error_message(message.map(str_bytes))
    };
    let all = |code: E, message: Option<&str>| {
        let results = req
            .creations
            .iter()
            .map(|_| result(Some(code), message.map(str::to_string)))
            .collect();
        m::CreateAclsResponse::default().with_results(results)
    };
    if !ctx.authorize(Operation::Alter, Resource::Cluster) {
        return all(E::ClusterAuthorizationFailed, None);
    }
    if !broker.authorizer.acls_enabled() {
        return all(E::SecurityDisabled, Some(NO_AUTHORIZER));
    }
    let checked: Vec<Result<AclBinding, String>> = req.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let store = broker.security.clone();
    let written = match tokio::task::spawn_blocking(move || store.create_acls(valid)).await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    if let Err(e) = &written {
        tracing::error!(error = %e, "storing ACLs failed");
    }
    let results = checked
        .into_iter()
        .map(|c| match (c, &written) {
            (Err(why), _) => result(Some(E::InvalidRequest), Some(why)),
            (Ok(b), Ok(())) => {
                tracing::info!(principal = %ctx.principal, acl = %b, "created an ACL");
                result(None, None)
            }
            (Ok(_), Err(_)) => result(
                Some(E::UnknownServerError),
                Some("The ACL could not be stored".to_string()),
            ),
        })
        .collect();
    m::CreateAclsResponse::default().with_results(results)
}

pub async fn delete_acls(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DeleteAclsRequest,
) -> m::DeleteAclsResponse {
    let result = |code: Option<E>, message: Option<String>| {
        m::delete_acls_response::DeleteAclsFilterResult::default()
            .with_error_code(code.map_or(0, |c| c.code()))
            .with_error_message(message.map(str_bytes))
    };
    let all = |code: E, message: Option<&str>| {
        let results = req
            .filters
            .iter()
            .map(|_| result(Some(code), message.map(str::to_string)))
            .collect();
        m::DeleteAclsResponse::default().with_filter_results(results)
    };
    if !ctx.authorize(Operation::Alter, Resource::Cluster) {
        return all(E::ClusterAuthorizationFailed, None);
    }
    if !broker.authorizer.acls_enabled() {
        return all(E::SecurityDisabled, Some(NO_AUTHORIZER_SHORT));
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let store = broker.security.clone();
    let removed = match tokio::task::spawn_blocking(move || store.delete_acls(&valid)).await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    let mut removed = match removed {
        Ok(r) => r.into_iter(),
        Err(e) => {
            tracing::error!(error = %e, "deleting ACLs failed");
            return all(E::UnknownServerError, Some("The ACLs could not be deleted"));
        }
    };
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Err(why) => result(Some(E::InvalidRequest), Some(why)),
            Ok(_) => {
                let matching = removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        tracing::info!(principal = %ctx.principal, acl = %b, "deleted an ACL");
                        m::delete_acls_response::DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(str_bytes(b.resource_name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(str_bytes(b.principal))
                            .with_host(str_bytes(b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect();
                result(None, None).with_matching_acls(matching)
            }
        })
        .collect();
    m::DeleteAclsResponse::default().with_filter_results(results)
}
