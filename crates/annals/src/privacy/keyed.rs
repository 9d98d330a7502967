//! New subjects' keys in the append's own transaction ([`Shredding::in_store`]): a store that
//! keeps its own data keys writes a new subject's key with the first events sealed under it, in
//! one transaction, so a first append costs one commit, not two.

use std::future::Future;
use std::pin::Pin;

use super::{KeyStore, Shredding, WrappedKey};
use crate::error::StoreError;
use crate::store::{AppendOutcome, EventStore, StreamAppend};

/// An event store that keeps its own data keys and can store new ones in the transaction of the
/// append that first uses them.
pub trait AppendWithKeys: EventStore + KeyStore {
    /// Stores `keys` (for subjects that have none) and `appends` in one transaction. `Ok(None)`
    /// when one of those subjects has a key by then (another writer made it): nothing is stored,
    /// and the events must be sealed again under that key.
    fn append_with_keys(
        &self,
        keys: Vec<(String, WrappedKey)>,
        appends: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Option<AppendOutcome>, StoreError>> + Send;
}

impl<T: AppendWithKeys + ?Sized> AppendWithKeys for std::sync::Arc<T>
where
    std::sync::Arc<T>: EventStore,
{
    fn append_with_keys(
        &self,
        keys: Vec<(String, WrappedKey)>,
        appends: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Option<AppendOutcome>, StoreError>> + Send {
        (**self).append_with_keys(keys, appends)
    }
}

/// [`AppendWithKeys::append_with_keys`] in two steps, for a store whose keys cannot join its
/// append's transaction: each key first (its own commit), then the append.
pub async fn append_with_keys_in_two_steps<S: EventStore + KeyStore>(
    store: &S,
    keys: Vec<(String, WrappedKey)>,
    appends: Vec<StreamAppend>,
) -> Result<Option<AppendOutcome>, StoreError> {
    for (subject, key) in keys {
        if store.create_key(&subject, key.clone()).await? != key {
            return Ok(None);
        }
    }
    store.append(appends).await.map(Some)
}

/// `AppendWithKeys::append_with_keys` of a store `S`, as a plain function (so `Shredding`'s
/// generic `EventStore` impl can call it for the stores that have it).
pub(super) type KeyedAppend<S> =
    for<'a> fn(
        &'a S,
        Vec<(String, WrappedKey)>,
        Vec<StreamAppend>,
    ) -> Pin<Box<dyn Future<Output = Result<Option<AppendOutcome>, StoreError>> + Send + 'a>>;

pub(super) fn keyed_append<S: AppendWithKeys>() -> KeyedAppend<S> {
    |store, keys, appends| Box::pin(store.append_with_keys(keys, appends))
}

/// A key made for an append, not stored yet.
pub(super) struct NewKey {
    pub(super) subject: String,
    pub(super) wrapped: WrappedKey,
    pub(super) cipher: super::DataKey,
}

/// How often an append is sealed again when other writers keep creating its subjects' keys.
const RACES: usize = 3;

impl<S: EventStore, K: KeyStore> Shredding<S, K> {
    /// Seals `appends`, making keys for new subjects, and stores keys and events together.
    pub(super) async fn append_keyed(
        &self,
        keyed: KeyedAppend<S>,
        appends: Vec<StreamAppend>,
    ) -> Result<AppendOutcome, StoreError> {
        for _ in 0..RACES {
            let mut new_keys = Vec::new();
            let sealed = self.seal_appends(appends.clone(), Some(&mut new_keys)).await?;
            if new_keys.is_empty() {
                return self.inner.append(sealed).await;
            }
            let keys = new_keys
                .iter()
                .map(|k| (k.subject.clone(), k.wrapped.clone()))
                .collect();
            if let Some(outcome) = keyed(&self.inner, keys, sealed).await? {
                for k in new_keys {
                    self.remember(k.subject, k.cipher);
                }
                return Ok(outcome);
            }
        }
        Err(StoreError::unavailable(
            format!("other writers created this append's subjects' keys {RACES} times in a row"),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use aes_gcm::{Aes256Gcm, KeyInit};

    use super::super::{KEY_CACHE_MAX, MasterKey, PersonalFields};
    use super::*;
    use crate::memory::MemoryStore;

    #[test]
    fn the_key_cache_stays_bounded_however_many_subjects_come() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let shred = Shredding::new(
            store.clone(),
            store,
            PersonalFields::new(),
            MasterKey::new("m", [1; 32]),
            vec![],
        );
        let cipher = std::sync::Arc::new(Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from([2; 32])));
        for i in 0..KEY_CACHE_MAX * 3 {
            shred.remember(format!("subject-{i}"), cipher.clone());
            assert!(
                shred.cached().len() <= KEY_CACHE_MAX,
                "{} keys after {i}",
                shred.cached().len()
            );
        }
        assert!(
            shred
                .cached()
                .contains_key(&format!("subject-{}", KEY_CACHE_MAX * 3 - 1))
        );
    }
}
