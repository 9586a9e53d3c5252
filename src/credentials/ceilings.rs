//! Grant ceilings: the tile grant and the allowed origins a credential
//! (an API key, an OAuth client, a service account) may carry, and the
//! one narrowing rule every derived grant follows: a dimension left out is
//! the parent's, a request for more than the parent holds is refused.

use super::CredentialError;
use crate::grants::{Grant, GrantClaim, NarrowError};

/// Most allowed origins on one credential or token.
pub const MAX_ORIGINS: usize = 32;

/// A credential's tile-grant ceiling and allowed origins, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ceiling {
    /// `None`: any tile (an unlimited grant is stored as none).
    pub tiles: Option<GrantClaim>,
    /// `None`: any origin.
    pub origins: Option<Vec<String>>,
}

impl Ceiling {
    /// A stored credential's ceiling, from its `tiles` and
    /// `allowed_origins` columns.
    pub fn of(tiles: &Option<GrantClaim>, origins: &Option<Vec<String>>) -> Ceiling {
        Ceiling {
            tiles: tiles.clone(),
            origins: origins.clone(),
        }
    }
}

/// Validate a ceiling as an operator gives it: `tiles` a grant (400
/// `invalid_tiles`), each origin a pattern (`BadOrigin`); empty origins
/// are none.
pub fn check_ceiling(tiles: Option<&GrantClaim>, origins: &[String]) -> Result<Ceiling, CredentialError> {
    check_origins(origins)?;
    // Stored as the validated grant gives it back (degrees quantised,
    // layers deduplicated); an unlimited grant is no grant.
    let tiles = match tiles {
        None => None,
        Some(c) => {
            let g = Grant::from_claim(c).map_err(CredentialError::BadTiles)?;
            (!g.is_unlimited()).then(|| g.to_claim())
        }
    };
    Ok(Ceiling {
        tiles,
        origins: (!origins.is_empty()).then(|| origins.to_vec()),
    })
}

/// A change to a ceiling, as a JSON merge patch (RFC 7396) gives it: per
/// dimension, `None` leaves it as it is, `Some(None)` removes the limit,
/// `Some(Some(_))` sets it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CeilingPatch {
    pub tiles: Option<Option<GrantClaim>>,
    pub origins: Option<Option<Vec<String>>>,
}

/// Validate a ceiling change as an operator gives it, each dimension set
/// like [`check_ceiling`] (an unlimited grant removes the tile limit). An
/// empty list of origins is refused: it would allow no origin, and `null`
/// is what removes the limit.
pub fn check_patch(patch: &CeilingPatch) -> Result<CeilingPatch, CredentialError> {
    let tiles = match &patch.tiles {
        Some(Some(t)) => Some(check_ceiling(Some(t), &[])?.tiles),
        other => other.clone(),
    };
    let origins = match &patch.origins {
        Some(Some(o)) if o.is_empty() => return Err(CredentialError::NoOrigins),
        Some(Some(o)) => {
            check_origins(o)?;
            Some(Some(o.clone()))
        }
        other => other.clone(),
    };
    Ok(CeilingPatch { tiles, origins })
}

/// A ceiling change for the audit log: each dimension set (the tile
/// claim's JSON, the origins), removed (`-`) or left alone (`unchanged`).
pub fn patch_text(p: &CeilingPatch) -> String {
    let tiles = match &p.tiles {
        None => "unchanged".into(),
        Some(t) => t
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok())
            .unwrap_or_else(|| "-".into()),
    };
    let origins = match &p.origins {
        None => "unchanged".into(),
        Some(o) => o.as_ref().map(|o| o.join(" ")).unwrap_or_else(|| "-".into()),
    };
    format!("tiles={tiles} origins={origins}")
}

/// Each of `origins` an allowed-origin pattern, and not too many.
pub fn check_origins(origins: &[String]) -> Result<(), CredentialError> {
    if let Some(bad) = origins.iter().find(|o| !crate::routing::valid_origin_pattern(o)) {
        return Err(CredentialError::BadOrigin(bad.clone()));
    }
    if origins.len() > MAX_ORIGINS {
        return Err(CredentialError::BadOrigin(format!("more than {MAX_ORIGINS} origins")));
    }
    Ok(())
}

/// Whether the origin pattern `child` admits no origin that `parent`
/// refuses: an exact origin is covered by an equal one or by a wildcard
/// that matches it; a wildcard (`https://*.example.com`, one label) only
/// by the same wildcard.
pub fn origin_covered(child: &str, parent: &str) -> bool {
    child == parent || (!child.contains("*.") && crate::routing::origin_matches(parent, child))
}

/// The allowed origins of a grant derived from one allowing `parent`
/// (`None`: any origin): `requested` when each of its patterns is
/// covered by one of the parent's, the parent's when nothing is asked.
/// `Err` names the first pattern beyond the parent's.
pub fn narrow_origins<'a>(
    parent: Option<&'a [String]>,
    requested: Option<&'a [String]>,
) -> Result<Option<&'a [String]>, &'a str> {
    let Some(req) = requested else {
        return Ok(parent);
    };
    if let Some(p) = parent {
        if let Some(bad) = req.iter().find(|r| !p.iter().any(|o| origin_covered(r, o))) {
            return Err(bad);
        }
    }
    Ok(Some(req))
}

/// The tile grant of a credential derived from one holding `parent`
/// (`None`: any tile), narrowed by `requested`; `None` when neither limits
/// anything.
pub fn narrow_tiles(parent: Option<&GrantClaim>, requested: Option<&GrantClaim>) -> Result<Option<Grant>, NarrowError> {
    let parent = match parent {
        None => Grant::unlimited(),
        Some(c) => Grant::from_claim(c).map_err(NarrowError::Invalid)?,
    };
    if requested.is_none() && parent.is_unlimited() {
        return Ok(None);
    }
    let g = parent.narrow(requested)?;
    Ok((!g.is_unlimited()).then_some(g))
}

/// `ceiling` narrowed to what a credential derived from it asks for (an
/// API key of a service account): the same rule as for tokens, each part
/// left out taken from the ceiling.
pub fn narrow_ceiling(ceiling: &Ceiling, asked: &Ceiling, holder: &str) -> Result<Ceiling, CredentialError> {
    let tiles = narrow_tiles(ceiling.tiles.as_ref(), asked.tiles.as_ref()).map_err(|e| {
        CredentialError::TilesBeyondCeiling {
            holder: holder.to_owned(),
            why: e.to_string(),
        }
    })?;
    let origins = narrow_origins(ceiling.origins.as_deref(), asked.origins.as_deref()).map_err(|bad| {
        CredentialError::OriginsBeyondCeiling {
            origin: bad.to_owned(),
            holder: holder.to_owned(),
        }
    })?;
    Ok(Ceiling {
        tiles: tiles.map(|g| g.to_claim()),
        origins: origins.map(<[String]>::to_vec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn coverage_of_exact_origins_and_wildcards() {
        assert!(origin_covered("https://app.example.com", "https://app.example.com"));
        assert!(origin_covered("https://app.example.com", "https://*.example.com"));
        assert!(origin_covered("https://*.example.com", "https://*.example.com"));
        assert!(!origin_covered("https://*.example.com", "https://app.example.com"));
        assert!(!origin_covered("https://a.b.example.com", "https://*.example.com"));
        assert!(!origin_covered("http://app.example.com", "https://*.example.com"));
        assert!(!origin_covered("https://*.app.example.com", "https://*.example.com"));
        assert!(!origin_covered("https://example.com", "https://*.example.com"));
    }

    #[test]
    fn narrowing_origins_keeps_within_the_parent() {
        let parent = v(&["https://*.example.com", "http://localhost:8080"]);
        let ok = v(&["https://maps.example.com"]);
        assert_eq!(narrow_origins(Some(&parent), None), Ok(Some(&parent[..])));
        assert_eq!(narrow_origins(Some(&parent), Some(&ok)), Ok(Some(&ok[..])));
        assert_eq!(narrow_origins(None, Some(&ok)), Ok(Some(&ok[..])));
        assert_eq!(narrow_origins(None, None), Ok(None));
        let beyond = v(&["https://maps.example.com", "https://evil.example.net"]);
        assert_eq!(
            narrow_origins(Some(&parent), Some(&beyond)),
            Err("https://evil.example.net")
        );
    }

    fn label() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("app".to_string())]
    }

    /// Patterns over a small alphabet, so that parents and children meet.
    fn pattern() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("https://"), Just("http://")],
            prop_oneof![Just(None), label().prop_map(Some)],
            prop_oneof![Just("example.com"), Just("a.example.com"), Just("example.org")],
            prop_oneof![Just(""), Just(":8080")],
        )
            .prop_map(|(scheme, first, rest, port)| match first {
                None => format!("{scheme}*.{rest}{port}"),
                Some(l) => format!("{scheme}{l}.{rest}{port}"),
            })
    }

    /// An origin as a browser sends it.
    fn origin() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("https://"), Just("http://")],
            proptest::collection::vec(label(), 0..3),
            prop_oneof![Just("example.com"), Just("example.org")],
            prop_oneof![Just(""), Just(":8080")],
        )
            .prop_map(|(scheme, labels, rest, port)| {
                let mut host = labels.join(".");
                if !host.is_empty() {
                    host.push('.');
                }
                format!("{scheme}{host}{rest}{port}")
            })
    }

    proptest! {
        /// Whatever origin a narrowed set admits, the parent admits too.
        #[test]
        fn narrowed_origins_never_admit_more(
            parent in proptest::collection::vec(pattern(), 1..4),
            requested in proptest::collection::vec(pattern(), 1..4),
            origins in proptest::collection::vec(origin(), 16),
        ) {
            for p in parent.iter().chain(&requested) {
                prop_assert!(crate::routing::valid_origin_pattern(p), "{}", p);
            }
            if let Ok(Some(child)) = narrow_origins(Some(&parent), Some(&requested)) {
                for o in &origins {
                    let by_child = child.iter().any(|c| crate::routing::origin_matches(c, o));
                    let by_parent = parent.iter().any(|p| crate::routing::origin_matches(p, o));
                    prop_assert!(!by_child || by_parent, "{} admitted by {:?}, not by {:?}", o, child, parent);
                }
            }
        }
    }
}
