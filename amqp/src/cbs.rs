//! `$cbs` put-token: a SAS token for an audience, verified against the shared access
//! policies, becomes a claim of the connection until the token's expiry.

use fe2o3_amqp_types::messaging::Body;
use fe2o3_amqp_types::primitives::Value;
use runnel_security::sas;

use crate::node::{property, reply, AmqpMessage};
use crate::sasl::now_secs;
use crate::server::Connection;

pub const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

pub fn put_token(request: &AmqpMessage, shared: &Connection) -> AmqpMessage {
    if property(request, "operation") != Some("put-token") {
        return reply(request, 400, "the operation must be put-token", Value::Null);
    }
    match property(request, "type") {
        Some(SAS_TOKEN_TYPE) => {}
        Some("jwt") => {
            return reply(
                request,
                400,
                "JWT tokens are not supported; use a SAS token",
                Value::Null,
            )
        }
        _ => return reply(request, 400, "unknown token type", Value::Null),
    }
    let Some(audience) = property(request, "name") else {
        return reply(
            request,
            400,
            "the request has no name (audience)",
            Value::Null,
        );
    };
    let token = match &request.body {
        Body::Value(v) => match &v.0 {
            Value::String(s) => s.as_str(),
            _ => return reply(request, 400, "the token must be a string", Value::Null),
        },
        _ => return reply(request, 400, "the token must be an amqp-value", Value::Null),
    };
    let now = now_secs();
    let verified = shared
        .hubs
        .security
        .with_policies(|policies| sas::verify_token(policies, token, now, None));
    let grant = match verified {
        Ok(g) => g,
        Err(e) => {
            tracing::info!(peer = %shared.peer, error = %e, "CBS put-token refused");
            return reply(request, 401, &format!("InvalidSignature: {e}"), Value::Null);
        }
    };
    // The token's resource must cover the audience it is put for.
    let Some((resource, expires)) = sas::token_scope(token) else {
        return reply(request, 401, "malformed token", Value::Null);
    };
    if !crate::address::covers(&resource, audience) {
        return reply(
            request,
            401,
            "the token's resource does not cover the audience",
            Value::Null,
        );
    }
    if !shared.claims.put(audience, grant, expires) {
        return reply(
            request,
            400,
            "too many tokens on this connection",
            Value::Null,
        );
    }
    reply(request, 202, "Accepted", Value::Null)
}
