//! Crypto-shredding (DESIGN §1.8, §8): personal fields are stored encrypted (AES-256-GCM) under a
//! data key of their subject; forgetting the subject destroys the key, and every read path then
//! returns [`REDACTED`] for those fields while every other field still loads.
//!
//! - [`KeyStore`]: where data keys live, wrapped (encrypted) by a [`MasterKey`]: a key table in
//!   the store's own database (memory, SQLite, PostgreSQL), or an external KMS behind the trait.
//! - [`PersonalFields`]: which payload fields of which event types are personal, and which field
//!   names their subject.
//! - [`Shredding`]: an [`EventStore`] wrapper that encrypts on append and decrypts on every read
//!   (aggregate loads, the global log, subscriptions and projections read through it). It drops
//!   snapshots of stream types with personal fields, so no snapshot holds their plaintext. The
//!   relay reads the inner store, so published messages carry ciphertext only.
//! - [`forget`] destroys a subject's key and records `SubjectForgotten` in the stream
//!   [`FORGOTTEN_STREAM`], so projections can erase their own copies; [`Shredding::rotate`]
//!   re-wraps every data key under a new master key without rewriting an event.
//! - [`pseudonym`] replaces a personal identifier used as a stream id or in metadata by a
//!   stable UUID from the same forgettable table.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Key};
use serde_json::{Map, Value, json};

use crate::error::StoreError;
use crate::event::{Metadata, NewEvent, RecordedEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::{AppendOutcome, EventStore, ReadStream, Snapshot, StreamAppend, StreamInfo};

mod codec;
mod forward;
mod keyed;
mod read;

use codec::{SEALED, base64, open, seal};
mod pseudonym;

pub use keyed::{AppendWithKeys, append_with_keys_in_two_steps};

use pseudonym::PSEUDONYM;
pub use pseudonym::{forget_pseudonym, pseudonym, reidentify};

/// What a forgotten subject's personal fields read as.
pub const REDACTED: &str = "[forgotten]";
/// The stream forgetting is recorded in (type `Forget`, events `SubjectForgotten {subject}`).
pub const FORGOTTEN_STREAM: &str = "annals-forgotten";
const SUBJECT: &str = "$subject";

/// A key that wraps data keys; rotate it with [`Shredding::rotate`].
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

impl MasterKey {
    /// Master key `id` from its 32 bytes (from a secret store, an environment variable, a KMS).
    pub fn new(id: impl Into<String>, bytes: [u8; 32]) -> Self {
        Self {
            id: id.into(),
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)),
        }
    }

    /// Its id, stored with every key it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A subject's data key, encrypted by the master key `master_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The master key that wrapped it.
    pub master_id: String,
    /// Nonce and ciphertext.
    pub bytes: Vec<u8>,
}

/// Where data keys are kept, one per subject.
pub trait KeyStore: Send + Sync {
    /// Subject's key, if it has one (never made, or forgotten: `None`).
    fn load_key(&self, subject: &str) -> impl Future<Output = Result<Option<WrappedKey>, StoreError>> + Send;
    /// Stores `key` for `subject` unless it has one; returns the key it has now.
    fn create_key(&self, subject: &str, key: WrappedKey)
    -> impl Future<Output = Result<WrappedKey, StoreError>> + Send;
    /// Destroys subject's key; false if it had none.
    fn forget_key(&self, subject: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every subject's key (for rotation).
    fn list_keys(&self) -> impl Future<Output = Result<Vec<(String, WrappedKey)>, StoreError>> + Send;
    /// Replaces subject's key, if it still has one (rotation).
    fn replace_key(&self, subject: &str, key: WrappedKey) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Which fields are personal: (stream type, event type, field, field naming the subject).
#[derive(Clone, Debug, Default)]
pub struct PersonalFields {
    by_event: HashMap<String, Vec<(String, String)>>,
    stream_types: HashSet<String>,
}

impl PersonalFields {
    /// No personal fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Field `field` of `event_type` events (in `stream_type` streams) is personal data of the
    /// subject named by the payload's `subject_field` (a string, e.g. a consumer id).
    pub fn field(mut self, stream_type: &str, event_type: &str, field: &str, subject_field: &str) -> Self {
        self.stream_types.insert(stream_type.to_owned());
        self.by_event
            .entry(event_type.to_owned())
            .or_default()
            .push((field.to_owned(), subject_field.to_owned()));
        self
    }
}

/// An [`EventStore`] whose personal fields are encrypted at rest; see the module docs.
#[derive(Clone)]
pub struct Shredding<S, K> {
    inner: S,
    keys: K,
    fields: Arc<PersonalFields>,
    masters: Arc<Vec<MasterKey>>,
    /// Data keys unwrapped in the last [`KEY_CACHE_TTL`], by subject.
    cache: read::KeyCache,
    /// `keys` is `inner` ([`Shredding::in_store`]): new keys are stored with the append.
    keyed: Option<keyed::KeyedAppend<S>>,
}

/// How long an unwrapped data key is reused without asking the key store again. A subject
/// forgotten through this store is dropped from it at once; one forgotten by another process is
/// unreadable here after at most this long.
pub const KEY_CACHE_TTL: Duration = Duration::from_millis(250);

/// Whether a key cached at `at` may still be used at `now`.
fn fresh(at: std::time::Instant, now: std::time::Instant) -> bool {
    now.saturating_duration_since(at) < KEY_CACHE_TTL
}

/// A subject's data key, unwrapped and ready (shared: a cipher with its round keys is about 1 KiB).
type DataKey = Arc<Aes256Gcm>;

/// The most data keys a [`Shredding`] keeps unwrapped at once.
const KEY_CACHE_MAX: usize = 10_000;

impl<S: AppendWithKeys + Clone> Shredding<S, S> {
    /// [`new`](Self::new) for a store that keeps its data keys itself, in the same database as its
    /// events (SQLite, PostgreSQL, memory): a new subject's key is stored with the append that
    /// first uses it ([`AppendWithKeys`]; on SQLite in the same transaction, one commit instead
    /// of two).
    pub fn in_store(store: S, fields: PersonalFields, master: MasterKey, older: Vec<MasterKey>) -> Self {
        Self {
            keyed: Some(keyed::keyed_append::<S>()),
            ..Self::new(store.clone(), store, fields, master, older)
        }
    }
}

impl<S: EventStore, K: KeyStore> Shredding<S, K> {
    /// `inner` with the personal `fields` encrypted, data keys in `keys` wrapped by `master`
    /// (and unwrapped by it or any of `older`, until they are rotated).
    pub fn new(inner: S, keys: K, fields: PersonalFields, master: MasterKey, older: Vec<MasterKey>) -> Self {
        let mut masters = vec![master];
        masters.extend(older);
        let cache = read::KeyCache::default();
        Self {
            inner,
            keys,
            fields: Arc::new(fields),
            masters: Arc::new(masters),
            cache,
            keyed: None,
        }
    }

    /// The store underneath (ciphertext only): for the relay and for tools.
    ///
    /// (See also [`Shredding::in_store`], for a store that keeps its own data keys.)
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The plain bytes of a data key, opened with the master key that wrapped it.
    fn unwrap_bytes(&self, wrapped: &WrappedKey) -> Result<Vec<u8>, StoreError> {
        let master = self.masters.iter().find(|m| m.id == wrapped.master_id).ok_or_else(|| {
            StoreError::misconfigured(
                format!(
                    "no master key `{}` to unwrap a data key: give it to Shredding (as the current or an older key)",
                    wrapped.master_id
                ),
                None,
            )
        })?;
        open(&master.cipher, &wrapped.bytes).ok_or_else(|| {
            StoreError::misconfigured(
                format!(
                    "a data key does not open with master key `{}`: its bytes are not the ones that wrapped it",
                    master.id
                ),
                None,
            )
        })
    }

    fn unwrap_key(&self, wrapped: &WrappedKey) -> Result<Aes256Gcm, StoreError> {
        let bytes = self.unwrap_bytes(wrapped)?;
        let key = Key::<Aes256Gcm>::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt {
            stream: String::new(),
            version: 0,
            reason: "a stored data key is not 32 bytes".into(),
            position: None,
        })?;
        Ok(Aes256Gcm::new(&key))
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<String, (std::time::Instant, DataKey)>> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn data_key(&self, subject: &str, create: bool) -> Result<Option<DataKey>, StoreError> {
        if let Some((at, cipher)) = self.cached().get(subject)
            && fresh(*at, std::time::Instant::now())
        {
            return Ok(Some(cipher.clone()));
        }
        let key = self.fetch_key(subject, create).await?;
        match &key {
            Some(cipher) => self.remember(subject.to_owned(), cipher.clone()),
            None => {
                self.cached().remove(subject);
            }
        }
        Ok(key)
    }

    /// Caches `subject`'s key. The cache stays bounded: past [`KEY_CACHE_MAX`] keys the stale
    /// ones go, and if all are fresh, all go (it is a cache: the next read fetches again).
    fn remember(&self, subject: String, cipher: DataKey) {
        let mut cache = self.cached();
        if cache.len() >= KEY_CACHE_MAX {
            let now = std::time::Instant::now();
            cache.retain(|_, (at, _)| fresh(*at, now));
            if cache.len() >= KEY_CACHE_MAX / 2 {
                cache.clear();
            }
        }
        cache.insert(subject, (std::time::Instant::now(), cipher));
    }

    async fn fetch_key(&self, subject: &str, create: bool) -> Result<Option<DataKey>, StoreError> {
        let wrapped = match self.keys.load_key(subject).await? {
            Some(w) => w,
            None if create => self.keys.create_key(subject, self.new_key().0).await?,
            None => return Ok(None),
        };
        self.unwrap_key(&wrapped).map(|k| Some(Arc::new(k)))
    }

    /// A fresh data key: wrapped by the current master key, and ready to use.
    fn new_key(&self) -> (WrappedKey, DataKey) {
        let key = Key::<Aes256Gcm>::generate();
        let master = &self.masters[0];
        let wrapped = WrappedKey {
            master_id: master.id.clone(),
            bytes: seal(&master.cipher, key.as_slice()),
        };
        (wrapped, Arc::new(Aes256Gcm::new(&key)))
    }

    /// The key to seal `subject`'s fields with: made and stored now, or (with `new_keys`) made
    /// now and stored with the append.
    async fn sealing_key(
        &self,
        subject: &str,
        new_keys: Option<&mut Vec<keyed::NewKey>>,
    ) -> Result<DataKey, StoreError> {
        let Some(new_keys) = new_keys else {
            return Ok(self.data_key(subject, true).await?.expect("a created key"));
        };
        if let Some(k) = new_keys.iter().find(|k| k.subject == subject) {
            return Ok(k.cipher.clone());
        }
        if let Some(cipher) = self.data_key(subject, false).await? {
            return Ok(cipher);
        }
        let (wrapped, cipher) = self.new_key();
        new_keys.push(keyed::NewKey {
            subject: subject.to_owned(),
            wrapped,
            cipher: cipher.clone(),
        });
        Ok(cipher)
    }

    async fn encrypt(
        &self,
        stream: &str,
        event: NewEvent,
        mut new_keys: Option<&mut Vec<keyed::NewKey>>,
    ) -> Result<NewEvent, StoreError> {
        let Some(fields) = self.fields.by_event.get(&event.event_type) else {
            return Ok(event);
        };
        let bad = |reason: String| StoreError::MalformedPayload {
            stream: stream.to_owned(),
            reason,
        };
        let mut payload: Map<String, Value> = serde_json::from_str(event.payload.get()).map_err(|e| {
            bad(format!(
                "{} has personal fields but is not a JSON object: {e}",
                event.event_type
            ))
        })?;
        for (field, subject_field) in fields {
            let Some(value) = payload.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            let Some(subject) = payload.get(subject_field).and_then(Value::as_str).map(str::to_owned) else {
                return Err(bad(format!(
                    "{}: the subject of personal field `{field}` must be the string field `{subject_field}`",
                    event.event_type
                )));
            };
            let cipher = self.sealing_key(&subject, new_keys.as_deref_mut()).await?;
            let sealed = seal(&cipher, value.to_string().as_bytes());
            payload.insert(field.clone(), json!({ SEALED: base64(&sealed), SUBJECT: subject }));
        }
        let raw = serde_json::value::to_raw_value(&payload).map_err(|e| bad(e.to_string()))?;
        Ok(NewEvent { payload: raw, ..event })
    }

    /// `appends` with their personal fields sealed and the snapshots of personal stream types
    /// dropped (a snapshot would hold the fields in plain: such aggregates are rebuilt by replay).
    /// With `new_keys`, new subjects' keys are made but not stored: they go with the append.
    async fn seal_appends(
        &self,
        appends: Vec<StreamAppend>,
        mut new_keys: Option<&mut Vec<keyed::NewKey>>,
    ) -> Result<Vec<StreamAppend>, StoreError> {
        let mut sealed = Vec::with_capacity(appends.len());
        for mut a in appends {
            let mut events = Vec::with_capacity(a.events.len());
            for e in std::mem::take(&mut a.events) {
                events.push(self.encrypt(a.stream_id.as_str(), e, new_keys.as_deref_mut()).await?);
            }
            a.events = events;
            if self.fields.stream_types.contains(&a.stream_type) {
                a.snapshot = None;
            }
            sealed.push(a);
        }
        Ok(sealed)
    }

    /// `event` (as read through this store: opened) with its personal fields sealed again under
    /// their subjects' keys, for a copy kept outside the events (a parked message). No key is
    /// made here: a field whose subject has none (forgotten) becomes [`REDACTED`]; a value still
    /// sealed or already redacted is kept as it is.
    async fn reseal(&self, event: &RecordedEvent) -> Result<RecordedEvent, StoreError> {
        let Some(fields) = self.fields.by_event.get(&event.event_type) else {
            return Ok(event.clone());
        };
        // Appends of this type were refused unless their payload was an object.
        let Ok(mut payload) = serde_json::from_str::<Map<String, Value>>(event.payload.get()) else {
            return Ok(event.clone());
        };
        for (field, subject_field) in fields {
            let Some(value) = payload.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            if value.get(SEALED).is_some() || value.as_str() == Some(REDACTED) {
                continue;
            }
            let subject = payload.get(subject_field).and_then(Value::as_str).map(str::to_owned);
            let key = match &subject {
                Some(subject) => self.data_key(subject, false).await?,
                None => None,
            };
            let kept = match (key, subject) {
                (Some(cipher), Some(subject)) => {
                    json!({ SEALED: base64(&seal(&cipher, value.to_string().as_bytes())), SUBJECT: subject })
                }
                _ => json!(REDACTED),
            };
            payload.insert(field.clone(), kept);
        }
        let payload = serde_json::value::to_raw_value(&payload).map_err(|e| StoreError::MalformedPayload {
            stream: event.stream_id.to_string(),
            reason: e.to_string(),
        })?;
        Ok(RecordedEvent {
            payload,
            ..event.clone()
        })
    }

    /// Forgets `subject` ([`forget`]), dropping its key from this store's cache at once.
    pub async fn forget(&self, subject: &str, metadata: &Metadata) -> Result<bool, StoreError> {
        let forgotten = forget(&self.keys, &self.inner, subject, metadata).await;
        self.cached().remove(subject);
        forgotten
    }

    /// Re-wraps every data key under the current master key (the first given to
    /// [`new`](Self::new)); no event is rewritten. Returns how many keys moved.
    pub async fn rotate(&self) -> Result<usize, StoreError> {
        let current = &self.masters[0];
        let mut moved = 0;
        for (subject, wrapped) in self.keys.list_keys().await? {
            if wrapped.master_id == current.id || wrapped.master_id == PSEUDONYM {
                continue;
            }
            let plain = self.unwrap_bytes(&wrapped)?;
            let rewrapped = WrappedKey {
                master_id: current.id.clone(),
                bytes: seal(&current.cipher, &plain),
            };
            self.keys.replace_key(&subject, rewrapped).await?;
            moved += 1;
        }
        Ok(moved)
    }
}

/// Forgets `subject`: destroys its data key in `keys`, so its personal fields read as
/// [`REDACTED`] everywhere, and records it in `store`'s [`FORGOTTEN_STREAM`] (projections that
/// copied personal data erase it there). False if it had no key. Needs no master key.
pub async fn forget<K: KeyStore, S: EventStore>(
    keys: &K,
    store: &S,
    subject: &str,
    metadata: &Metadata,
) -> Result<bool, StoreError> {
    let forgotten = keys.forget_key(subject).await?;
    if forgotten {
        let record =
            NewEvent::from_value("SubjectForgotten", &json!({ "subject": subject })).with_metadata(metadata.clone());
        store
            .append_to_stream(
                StreamId::new(FORGOTTEN_STREAM)?,
                "Forget",
                ExpectedVersion::Any,
                vec![record],
            )
            .await?;
    }
    Ok(forgotten)
}

impl<S: EventStore, K: KeyStore> EventStore for Shredding<S, K> {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        // Appends without personal fields need no key (and no copy kept for a second sealing).
        let personal = || {
            appends
                .iter()
                .flat_map(|a| &a.events)
                .any(|e| self.fields.by_event.contains_key(&e.event_type))
        };
        if let Some(keyed) = self.keyed
            && personal()
        {
            return self.append_keyed(keyed, appends).await;
        }
        let sealed = self.seal_appends(appends, None).await?;
        self.inner.append(sealed).await
    }

    async fn read_stream(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        let opener = read::cached_opener(&self.cache);
        let events = self.inner.read_stream_opened(stream, read, opener).await?;
        self.open_rest(events).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let opener = read::cached_opener(&self.cache);
        let events = self.inner.read_all_opened(after, limit, opener).await?;
        self.open_rest(events).await
    }

    fn wait_for_new(&self, after: u64, timeout: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.wait_for_new(after, timeout)
    }

    fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.inner.load_snapshot(stream, at_or_before)
    }

    fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send {
        self.inner.list_streams(after, limit)
    }
}

impl<K: KeyStore + ?Sized> KeyStore for Arc<K> {
    fn load_key(&self, subject: &str) -> impl Future<Output = Result<Option<WrappedKey>, StoreError>> + Send {
        (**self).load_key(subject)
    }
    fn create_key(
        &self,
        subject: &str,
        key: WrappedKey,
    ) -> impl Future<Output = Result<WrappedKey, StoreError>> + Send {
        (**self).create_key(subject, key)
    }
    fn forget_key(&self, subject: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).forget_key(subject)
    }
    fn list_keys(&self) -> impl Future<Output = Result<Vec<(String, WrappedKey)>, StoreError>> + Send {
        (**self).list_keys()
    }
    fn replace_key(&self, subject: &str, key: WrappedKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).replace_key(subject, key)
    }
}
