//! What the admin API refuses, and its responses (statuses and JSON bodies
//! as the admin API has always answered).

use crate::credentials::CredentialError;
use crate::http::Resp;
use crate::server::rescue::{self, IntoResponse};
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

impl AdminError {
    /// The response: the credential action's and the store's refusals as
    /// `server::rescue` maps them everywhere, a request the admin API
    /// cannot read as `invalid_request`.
    pub fn into_response(self) -> Resp {
        match self {
            AdminError::BodyUnreadable
            | AdminError::BadJson(_)
            | AdminError::SegmentNotUtf8
            | AdminError::OwnerNotOne => rescue::invalid_request(&self.to_string()),
            AdminError::Store(s) => s.into_response(),
            AdminError::Credential(c) => c.into_response(),
        }
    }
}
