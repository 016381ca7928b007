//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554), with the
//! answers of Kafka's `ScramImage.describe` and `ScramControlManager`: a user named twice
//! in one request is DUPLICATE_RESOURCE, a missing one RESOURCE_NOT_FOUND, iterations
//! outside [4096, 16384] UNACCEPTABLE_CREDENTIAL. An alteration's accepted changes are
//! written to the security store together, or not at all.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages as m;
use runnel_security::sasl::{ScramCredential, ScramMechanism};
use runnel_security::store::ScramUpsert;

use super::str_bytes;
use crate::context::{Operation, RequestContext, Resource};
use crate::kafka_broker::KafkaBroker;

pub fn describe_user_scram_credentials(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::DescribeUserScramCredentialsRequest,
) -> m::DescribeUserScramCredentialsResponse {
    if !ctx.authorize(Operation::Describe, Resource::Cluster) {
        return m::DescribeUserScramCredentialsResponse::default()
            .with_error_code(E::ClusterAuthorizationFailed.code());
    }
    let result = |user: &str| {
        m::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
            .with_user(str_bytes(user))
    };
    let requested: Option<Vec<String>> = req
        .users
        .filter(|u| !u.is_empty())
        .map(|users| users.iter().map(|u| u.name.to_string()).collect());
    let Some(requested) = requested else {
        let results = broker
            .security
            .describe_scram(None)
            .into_iter()
            .map(|(user, infos)| result(&user).with_credential_infos(credential_infos(&infos)))
            .collect();
        return m::DescribeUserScramCredentialsResponse::default().with_results(results);
    };
    let mut seen = BTreeMap::new();
    for user in &requested {
        *seen.entry(user.clone()).or_insert(0) += 1;
    }
    let found = broker.security.describe_scram(Some(&requested));
    let results = seen
        .into_iter()
        .map(|(user, count)| {
            if count > 1 {
                return result(&user)
                    .with_error_code(E::DuplicateResource.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                    ))));
            }
            match found.get(&user) {
                Some(infos) => result(&user).with_credential_infos(credential_infos(infos)),
                None => result(&user)
                    .with_error_code(E::ResourceNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )))),
            }
        })
        .collect();
    m::DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn credential_infos(
    infos: &[runnel_security::store::ScramCredentialInfo],
) -> Vec<m::describe_user_scram_credentials_response::CredentialInfo> {
    infos
        .iter()
        .map(|i| {
            m::describe_user_scram_credentials_response::CredentialInfo::default()
                .with_mechanism(i.mechanism.type_id())
                .with_iterations(i.iterations as i32)
        })
        .collect()
}

/// Why one user's alteration is refused: Kafka's code and message.
type Refusal = (E, String);

fn check_user_and_mechanism(user: &str, mechanism: i8) -> Result<ScramMechanism, Refusal> {
    if user.is_empty() {
        return Err((
            E::UnacceptableCredential,
            "Username must not be empty".to_string(),
        ));
    }
    ScramMechanism::from_type_id(mechanism).ok_or_else(|| {
        (
            E::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".to_string(),
        )
    })
}

pub async fn alter_user_scram_credentials(
    broker: &KafkaBroker,
    ctx: &RequestContext,
    req: m::AlterUserScramCredentialsRequest,
) -> m::AlterUserScramCredentialsResponse {
    if !ctx.authorize(Operation::Alter, Resource::Cluster) {
        // Every user named gets the error, as Kafka's error response does.
        let users: BTreeSet<String> = req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        let results = users
            .into_iter()
            .map(|u| {
                m::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                    .with_user(str_bytes(u))
                    .with_error_code(E::ClusterAuthorizationFailed.code())
            })
            .collect();
        return m::AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let mut refused: BTreeMap<String, Refusal> = BTreeMap::new();
    let mut deletions: BTreeMap<String, ScramMechanism> = BTreeMap::new();
    let mut upserts: BTreeMap<String, ScramUpsert> = BTreeMap::new();
    let twice = || {
        (
            E::DuplicateResource,
            "A user credential cannot be altered twice in the same request".to_string(),
        )
    };
    for d in &req.deletions {
        let user = d.name.to_string();
        if refused.contains_key(&user) {
            continue;
        }
        if deletions.remove(&user).is_some() {
            refused.insert(user, twice());
            continue;
        }
        match check_user_and_mechanism(&user, d.mechanism) {
            Ok(mechanism) if broker.security.scram_credential(&user, mechanism).is_some() => {
                deletions.insert(user, mechanism);
            }
            Ok(_) => {
                refused.insert(
                    user,
                    (
                        E::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist".to_string(),
                    ),
                );
            }
            Err(why) => {
                refused.insert(user, why);
            }
        }
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        if refused.contains_key(&user) {
            continue;
        }
        if deletions.remove(&user).is_some() || upserts.remove(&user).is_some() {
            refused.insert(user, twice());
            continue;
        }
        let checked = check_user_and_mechanism(&user, u.mechanism).and_then(|mechanism| {
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            mechanism
                .check_iterations(iterations)
                .map_err(|why| (E::UnacceptableCredential, why.to_string()))?;
            if u.salted_password.len() != mechanism.hash_len() || u.salt.is_empty() {
                return Err((
                    E::UnacceptableCredential,
                    "The salted password or the salt is malformed".to_string(),
                ));
            }
            Ok(ScramUpsert {
                user: user.clone(),
                mechanism,
                credential: ScramCredential::from_salted(
                    mechanism,
                    u.salt.to_vec(),
                    &u.salted_password,
                    iterations,
                ),
            })
        });
        match checked {
            Ok(upsert) => {
                upserts.insert(user, upsert);
            }
            Err(why) => {
                refused.insert(user, why);
            }
        }
    }
    let accepted: BTreeSet<String> = deletions.keys().chain(upserts.keys()).cloned().collect();
    let store = broker.security.clone();
    let deletions: Vec<(String, ScramMechanism)> = deletions.into_iter().collect();
    let upserts: Vec<ScramUpsert> = upserts.into_values().collect();
    let written = if accepted.is_empty() {
        Ok(())
    } else {
        match tokio::task::spawn_blocking(move || store.alter_scram(upserts, deletions)).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    };
    let mut results = Vec::new();
    for user in accepted {
        let r =
            m::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(&user));
        results.push(match &written {
            Ok(()) => r,
            Err(e) => {
                tracing::error!(error = %e, "writing SCRAM credentials failed");
                r.with_error_code(E::UnknownServerError.code())
                    .with_error_message(Some(str_bytes("The credentials could not be stored")))
            }
        });
    }
    for (user, (code, message)) in refused {
        results.push(
            m::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(str_bytes(&user))
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        );
    }
    m::AlterUserScramCredentialsResponse::default().with_results(results)
}
