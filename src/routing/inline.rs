//! The inline token endpoints as targets of the route table: their paths
//! compiled into one radix tree, looked up once per request.

/// An inline token endpoint a request reached, with the id an item
/// endpoint (`…/clients/{id}`, `…/tokens/{id}`) takes from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ApiKeyExchange,
    OAuthToken,
    Clients,
    Client(String),
    NamedToken,
    NamedTokens,
    NamedTokenItem(String),
    GeneratorToken,
    Me,
    Introspect,
    Revoke,
    Jwks,
    Metadata,
}

/// Which inline endpoint a path leads to. The item kinds (`Client`,
/// `NamedTokenItem`) are given the collection's path and match one more
/// non-empty segment below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    ApiKeyExchange,
    OAuthToken,
    Clients,
    Client,
    NamedToken,
    NamedTokens,
    NamedTokenItem,
    GeneratorToken,
    Me,
    Introspect,
    Revoke,
    Jwks,
    Metadata,
}

impl EndpointKind {
    fn is_item(self) -> bool {
        matches!(self, EndpointKind::Client | EndpointKind::NamedTokenItem)
    }
}

/// The inline endpoints' paths, compiled. Matching is exact (no letter
/// case folding), on the normalised path, for every host and method: the
/// endpoints answer wrong methods themselves.
#[derive(Debug, Clone, Default)]
pub struct InlineTable {
    router: matchit::Router<EndpointKind>,
}

/// A configured path as a literal matchit pattern (`{` and `}` escaped).
fn literal(path: &str) -> String {
    path.replace('{', "{{").replace('}', "}}")
}

impl InlineTable {
    /// Compile `(path, kind)` pairs. Where two endpoints are given the same
    /// path the first one listed keeps it; a literal path wins over an item
    /// path it also matches.
    pub fn build<'a>(endpoints: impl IntoIterator<Item = (&'a str, EndpointKind)>) -> InlineTable {
        let mut router = matchit::Router::new();
        for (path, kind) in endpoints {
            let pattern = if kind.is_item() {
                format!("{}/{{id}}", literal(path))
            } else {
                literal(path)
            };
            // A duplicate or conflicting path: the earlier endpoint keeps it.
            let _ = router.insert(pattern, kind);
        }
        InlineTable { router }
    }

    /// The endpoint kind `path` (normalised) leads to, if any.
    pub fn kind(&self, path: &str) -> Option<EndpointKind> {
        self.router.at(path).ok().map(|m| *m.value)
    }

    /// The inline endpoint at `path` (normalised), if any.
    #[inline]
    pub fn find(&self, path: &str) -> Option<Endpoint> {
        let m = self.router.at(path).ok()?;
        let id = || m.params.get("id").unwrap_or_default().to_owned();
        Some(match *m.value {
            EndpointKind::ApiKeyExchange => Endpoint::ApiKeyExchange,
            EndpointKind::OAuthToken => Endpoint::OAuthToken,
            EndpointKind::Clients => Endpoint::Clients,
            EndpointKind::Client => Endpoint::Client(id()),
            EndpointKind::NamedToken => Endpoint::NamedToken,
            EndpointKind::NamedTokens => Endpoint::NamedTokens,
            EndpointKind::NamedTokenItem => Endpoint::NamedTokenItem(id()),
            EndpointKind::GeneratorToken => Endpoint::GeneratorToken,
            EndpointKind::Me => Endpoint::Me,
            EndpointKind::Introspect => Endpoint::Introspect,
            EndpointKind::Revoke => Endpoint::Revoke,
            EndpointKind::Jwks => Endpoint::Jwks,
            EndpointKind::Metadata => Endpoint::Metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> InlineTable {
        InlineTable::build([
            ("/oauth/token", EndpointKind::OAuthToken),
            ("/oauth/clients/me", EndpointKind::Me),
            ("/oauth/clients", EndpointKind::Clients),
            ("/{odd}", EndpointKind::Jwks),
            ("/oauth/token", EndpointKind::Revoke),
            ("/oauth/clients", EndpointKind::Client),
        ])
    }

    #[test]
    fn literal_paths_items_and_first_listed_wins() {
        let t = table();
        assert_eq!(t.find("/oauth/token"), Some(Endpoint::OAuthToken));
        assert_eq!(t.find("/oauth/clients"), Some(Endpoint::Clients));
        assert_eq!(t.find("/oauth/clients/c1"), Some(Endpoint::Client("c1".into())));
        // A literal path beats the item path that also matches it.
        assert_eq!(t.find("/oauth/clients/me"), Some(Endpoint::Me));
        // Braces in a configured path are literal, not a parameter.
        assert_eq!(t.find("/{odd}"), Some(Endpoint::Jwks));
        assert_eq!(t.find("/x"), None);
        assert_eq!(t.find("/oauth/clients/"), None);
        assert_eq!(t.find("/oauth/clients/a/b"), None);
        assert_eq!(t.find("/OAUTH/TOKEN"), None, "matching is exact");
    }
}
