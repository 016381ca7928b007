//! Client errors.

use std::time::Duration;

use kafka_protocol::ResponseError;
use runnel_protocol::api::ApiKey;
use thiserror::Error;

/// Anything a client call can fail with.
#[derive(Debug, Error)]
pub enum Error {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Tls(String),
    #[error("connection closed")]
    Closed,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the broker does not support a version of {0:?} this client can use")]
    UnsupportedApi(ApiKey),
    #[error("{context}: {} (error code {code}){}", error_name(*.code), .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        code: i16,
        context: String,
        message: Option<String>,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Other(String),
}

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("unknown error {code}"),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The Kafka error, for errors returned by the broker.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { code, .. } => ResponseError::try_from_code(*code),
            _ => None,
        }
    }

    /// The Kafka error code, for errors returned by the broker.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed (network trouble or a retriable
    /// Kafka error).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io(_) | Error::Timeout(_) | Error::Closed => true,
            Error::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }
}

/// `Ok(())` for error code 0, otherwise an [`Error::Kafka`].
pub(crate) fn check(
    code: i16,
    message: Option<&kafka_protocol::protocol::StrBytes>,
    context: impl FnOnce() -> String,
) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Kafka {
            code,
            context: context(),
            // Brokers send "" as often as null for no message.
            message: message.filter(|m| !m.is_empty()).map(|m| m.to_string()),
        })
    }
}
