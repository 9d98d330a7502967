//! The repository's cache of the states it stored last (`Repository::with_cache`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Loaded;
use crate::ids::StreamId;

/// States this repository stored last, by stream.
pub(crate) struct Cache<A> {
    pub(crate) entries: Mutex<HashMap<StreamId, (A, u64)>>,
    pub(crate) capacity: usize,
    pub(crate) copy: fn(&A) -> A,
}

impl<A> Cache<A> {
    fn entries(&self) -> MutexGuard<'_, HashMap<StreamId, (A, u64)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &StreamId) -> Option<Loaded<A>> {
        self.entries().get(id).map(|(state, version)| Loaded {
            state: (self.copy)(state),
            version: *version,
            from_snapshot: None,
            deleted: false,
        })
    }

    /// Removes and returns the entry: a state decided on and not yet known to be stored.
    pub(crate) fn take(&self, id: &StreamId) -> Option<Loaded<A>> {
        self.entries().remove(id).map(|(state, version)| Loaded {
            state,
            version,
            from_snapshot: None,
            deleted: false,
        })
    }

    pub(crate) fn put(&self, id: &StreamId, state: &A, version: u64) {
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(id) {
            // Room for one more: drop any entry (the next use of it loads from the store).
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(id.clone(), ((self.copy)(state), version));
    }

    pub(crate) fn forget(&self, id: &StreamId) {
        self.entries().remove(id);
    }
}
