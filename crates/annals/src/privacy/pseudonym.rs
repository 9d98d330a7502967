//! Pseudonyms: stable, forgettable UUIDs standing in for personal identifiers.

use crate::error::StoreError;

use super::{KeyStore, WrappedKey};

/// Where pseudonyms are kept in the key table: `pseudonym:<value>`.
pub(super) const PSEUDONYM: &str = "pseudonym:";

/// Pseudonymization (DESIGN §8): a personal identifier (an e-mail, say) used where a stream id
/// or a metadata value needs one is replaced by a stable UUID, kept in the key table under
/// `pseudonym:<value>`. Forgetting the mapping ([`forget_pseudonym`]) leaves the UUID pointing
/// at no one; the same value then gets a new one.
pub async fn pseudonym<K: KeyStore>(keys: &K, value: &str) -> Result<uuid::Uuid, StoreError> {
    let name = format!("{PSEUDONYM}{value}");
    let fresh = WrappedKey {
        master_id: PSEUDONYM.to_owned(),
        bytes: uuid::Uuid::now_v7().as_bytes().to_vec(),
    };
    let stored = keys.create_key(&name, fresh).await?;
    uuid::Uuid::from_slice(&stored.bytes).map_err(|_| StoreError::Corrupt {
        stream: String::new(),
        version: 0,
        reason: format!("the stored pseudonym of `{value}` is not a UUID"),
        position: None,
    })
}

/// The value behind pseudonym `id`, while its mapping exists.
pub async fn reidentify<K: KeyStore>(keys: &K, id: uuid::Uuid) -> Result<Option<String>, StoreError> {
    Ok(keys
        .list_keys()
        .await?
        .into_iter()
        .find(|(name, key)| name.starts_with(PSEUDONYM) && key.bytes == id.as_bytes())
        .map(|(name, _)| name[PSEUDONYM.len()..].to_owned()))
}

/// Forgets the pseudonym of `value`; false if it had none.
pub async fn forget_pseudonym<K: KeyStore>(keys: &K, value: &str) -> Result<bool, StoreError> {
    keys.forget_key(&format!("{PSEUDONYM}{value}")).await
}
