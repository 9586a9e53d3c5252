//! The scope subset check: every scope a request names must be allowed.
//! Token grants, client creation, API keys and operator ceilings all go
//! through [`subset`].

use super::CredentialError;
use crate::config::Config;

/// The scopes of a space-separated request, deduplicated in order, each of
/// which `allowed` accepts; refused with the first one it does not.
pub fn subset(requested: &str, allowed: impl Fn(&str) -> bool) -> Result<Vec<&str>, &str> {
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !allowed(s) {
            return Err(s);
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// [`subset`]'s test for a list of allowed scopes.
pub fn within(list: &[String]) -> impl Fn(&str) -> bool + '_ {
    move |s| list.iter().any(|a| a == s)
}

/// Declared scopes (in `[scopes]`), deduplicated; none at all is allowed.
pub fn declared(cfg: &Config, scope: &str) -> Result<Vec<String>, CredentialError> {
    let ok = subset(scope, |s| cfg.scopes.contains_key(s))
        .map_err(|bad| CredentialError::UndeclaredScope { scope: bad.to_owned() })?;
    Ok(ok.into_iter().map(String::from).collect())
}

/// At least one scope, each declared; deduplicated.
pub fn check_scopes(cfg: &Config, scope: &str) -> Result<Vec<String>, CredentialError> {
    let out = declared(cfg, scope)?;
    if out.is_empty() {
        return Err(CredentialError::NoScope);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_subset() {
        let allowed = vec!["tiles:read".to_string(), "datasets:stream".to_string()];
        assert_eq!(subset("tiles:read", within(&allowed)).unwrap(), vec!["tiles:read"]);
        assert_eq!(
            subset("  tiles:read  tiles:read ", within(&allowed)).unwrap(),
            vec!["tiles:read"]
        );
        assert_eq!(
            subset("tiles:read tiles:write", within(&allowed)).unwrap_err(),
            "tiles:write"
        );
        assert!(subset("", within(&allowed)).unwrap().is_empty());
    }

    proptest::proptest! {
        /// A granted set is always within the allowed set, whatever is asked.
        #[test]
        fn subset_never_escalates(req in proptest::collection::vec("[a-c]:[rw]", 0..6)) {
            let allowed = vec!["a:r".to_string(), "b:w".to_string()];
            let s = req.join(" ");
            if let Ok(granted) = subset(&s, within(&allowed)) {
                for g in granted {
                    proptest::prop_assert!(allowed.iter().any(|a| a == g));
                }
            } else {
                proptest::prop_assert!(req.iter().any(|r| !allowed.contains(r)));
            }
        }
    }
}
