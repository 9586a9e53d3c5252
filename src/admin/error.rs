//! What the admin API refuses, and its responses (statuses and JSON bodies
//! as the admin API has always answered).

use http::StatusCode;

use crate::credentials::CredentialError;
use crate::http::{error, IntoResponse, Resp};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the body is too large or unreadable")]
    BodyUnreadable,
    #[error("invalid JSON: {0}")]
    BadJson(String),
    #[error("a path segment is not UTF-8")]
    SegmentNotUtf8,
    /// An API key names neither or both of a service account and a user.
    #[error("give exactly one of service_account and user")]
    OwnerNotOne,
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Resp {
        let msg = self.to_string();
        match self {
            AdminError::BodyUnreadable
            | AdminError::BadJson(_)
            | AdminError::SegmentNotUtf8
            | AdminError::OwnerNotOne => error(StatusCode::BAD_REQUEST, "invalid_request", &msg),
            AdminError::Store(s) => s.into_response(),
            AdminError::Credential(c) => match c {
                CredentialError::Store(s) => s.into_response(),
                CredentialError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &msg),
                CredentialError::Conflict(_) => error(StatusCode::CONFLICT, "conflict", &msg),
                CredentialError::BadName { .. }
                | CredentialError::UndeclaredScope { .. }
                | CredentialError::NoScope
                | CredentialError::ScopeNotAllowed { .. }
                | CredentialError::Disabled { .. }
                | CredentialError::PasswordLength
                | CredentialError::BadOrigin(_)
                | CredentialError::BadExpiry(_) => error(StatusCode::BAD_REQUEST, "invalid_request", &msg),
                CredentialError::BadTiles(_) => error(StatusCode::BAD_REQUEST, "invalid_tiles", &msg),
                e @ (CredentialError::KeyGeneration(_)
                | CredentialError::NoSigningKey
                | CredentialError::SigningFailed) => {
                    tracing::error!(error = %e, "credential action failed");
                    error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
                }
            },
        }
    }
}
