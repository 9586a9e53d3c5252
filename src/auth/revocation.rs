//! The in-memory revocation set: ids of revoked tokens (`jti`) and of revoked
//! credentials (`cid`, the credential a token was derived from). Read on
//! every request without a lock (an `ArcSwap` snapshot); written only on the
//! cold paths (a revocation, a notification, the periodic resync). Each
//! write bumps a [`tokio::sync::watch`] counter, which open streams on routes
//! that end them with their token wait on (`proxy::stream_end`); requests
//! never read it.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// id -> unix time after which the entry may be forgotten (None: never).
/// A persistent hash trie: an insertion copies only the path to its leaf
/// (O(log n)) and shares the rest with the previous version, so readers
/// keep a lock-free snapshot and a burst of revocations never copies the
/// whole set.
type Set = rpds::HashTrieMapSync<Box<str>, Option<i64>>;

#[derive(Debug)]
pub struct Revocations {
    set: ArcSwap<Set>,
    /// Bumped after every write of the set.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Revocations {
    fn default() -> Revocations {
        Revocations {
            set: ArcSwap::default(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Revocations {
    pub fn new() -> Revocations {
        Revocations::default()
    }

    /// A receiver that sees a change after every write of the set (an
    /// insertion, a merge, a replacement), to re-check an open stream's ids.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether either id is revoked. Hot path: one atomic load when empty.
    #[inline]
    pub fn is_revoked(&self, jti: Option<&str>, cid: Option<&str>) -> bool {
        self.is_revoked_by(|| (jti, cid))
    }

    /// [`Revocations::is_revoked`], the ids read only when the set is not
    /// empty.
    #[inline]
    pub fn is_revoked_by<'a>(&self, ids: impl FnOnce() -> (Option<&'a str>, Option<&'a str>)) -> bool {
        let set = self.set.load();
        if set.is_empty() {
            return false;
        }
        let (jti, cid) = ids();
        jti.is_some_and(|j| set.contains_key(j)) || cid.is_some_and(|c| set.contains_key(c))
    }

    /// Add one entry (a local revocation or a notification); the later
    /// `until` wins and None (forever) beats any time. O(log n).
    pub fn insert(&self, id: &str, until: Option<i64>) {
        self.set.rcu(|old| {
            let until = match old.get(id) {
                Some(prev) => later(*prev, until),
                None => until,
            };
            old.insert(id.into(), until)
        });
        self.bump();
    }

    /// Replace the whole set (periodic resync from the store), dropping
    /// entries whose `until` has passed.
    pub fn replace(&self, entries: impl IntoIterator<Item = (String, Option<i64>)>, now: i64) {
        let mut s = Set::new_sync();
        for (id, u) in entries {
            if u.is_none_or(|u| u >= now) {
                s.insert_mut(id.into_boxed_str(), u);
            }
        }
        self.set.store(Arc::new(s));
        self.bump();
    }

    /// Fold the store's list into the set in one atomic update: entries
    /// whose `until` has passed are dropped, the store's entries added or
    /// updated, and nothing else removed, so a revocation made here while
    /// the list was being read is never undone.
    pub fn merge(&self, entries: &[(String, Option<i64>)], now: i64) {
        self.set.rcu(|old| {
            let mut s = Set::clone(old);
            for (k, v) in old.iter() {
                if v.is_some_and(|u| u < now) {
                    s.remove_mut(k);
                }
            }
            for (id, until) in entries {
                if until.is_none_or(|u| u >= now) {
                    let u = match s.get(id.as_str()) {
                        Some(prev) => later(*prev, *until),
                        None => *until,
                    };
                    s.insert_mut(id.as_str().into(), u);
                }
            }
            s
        });
        self.bump();
    }

    pub fn len(&self) -> usize {
        self.set.load().size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The later of two `until`s; None (forever) beats any time.
fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (None, _) | (_, None) => None,
        (Some(a), Some(b)) => Some(a.max(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_ids_are_seen_and_expired_ones_dropped() {
        let r = Revocations::new();
        assert!(!r.is_revoked(Some("a"), Some("b")));
        r.insert("a", None);
        assert!(r.is_revoked(Some("a"), None));
        assert!(!r.is_revoked(Some("x"), Some("y")));
        r.replace(vec![("c".into(), Some(10)), ("d".into(), Some(5))], 7);
        assert!(r.is_revoked(None, Some("c")));
        assert!(!r.is_revoked(Some("d"), None));
        assert!(!r.is_revoked(Some("a"), None));
    }

    #[test]
    fn an_insert_keeps_the_later_expiry_and_earlier_snapshots() {
        let r = Revocations::new();
        r.insert("a", Some(10));
        let before = r.set.load_full();
        r.insert("a", Some(5));
        r.insert("b", Some(7));
        assert_eq!(r.set.load().get("a"), Some(&Some(10)));
        r.insert("a", None);
        assert_eq!(r.set.load().get("a"), Some(&None));
        assert_eq!(before.size(), 1, "a reader's snapshot is never changed");
        r.merge(&[], 8);
        assert!(!r.is_revoked(Some("b"), None), "expired at 7");
        assert!(r.is_revoked(Some("a"), None));
    }

    #[test]
    fn every_write_is_seen_by_subscribers() {
        let r = Revocations::new();
        let mut rx = r.subscribe();
        assert!(!rx.has_changed().unwrap());
        r.insert("a", None);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        r.merge(&[("b".into(), None)], 0);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        r.replace(Vec::new(), 0);
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn merge_never_drops_a_live_local_entry() {
        let r = Revocations::new();
        r.insert("local", None);
        r.insert("old", Some(5));
        r.merge(&[("store".into(), Some(100)), ("local".into(), Some(50))], 10);
        assert!(r.is_revoked(Some("local"), None));
        assert!(r.is_revoked(Some("store"), None));
        assert!(!r.is_revoked(Some("old"), None), "expired entries drop out");
        assert_eq!(r.len(), 2);
    }
}
