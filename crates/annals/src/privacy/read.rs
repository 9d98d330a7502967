//! Reading through [`Shredding`]: sealed values are opened where they lie in the stored text.
//!
//! Two passes. The first runs inside the backend's read ([`EventStore::read_stream_opened`]):
//! values whose subject's key is in the cache are opened before the backend parses the text, so
//! the text is checked once. The second, after the read, fetches the keys that were not cached
//! and opens (or, for a forgotten subject, redacts) what is left.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Instant;

use aes_gcm::Aes256Gcm;
use memchr::memmem::Finder;

use super::codec::{SEALED_START, open_in_place, sealed_at, unhex_into};
use super::{KEY_CACHE_TTL, KeyStore, REDACTED, Shredding};
use crate::error::StoreError;
use crate::event::{PayloadOpener, RecordedEvent, parse_stored_payload};
use crate::store::EventStore;

/// Data keys unwrapped lately, by subject, with when.
pub(super) type KeyCache = Arc<Mutex<HashMap<String, (Instant, Aes256Gcm)>>>;

static SEALED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(SEALED_START));

/// What to do with a value sealed for a subject.
enum Opening<'a> {
    /// Open it with this key.
    With(&'a Aes256Gcm),
    /// The subject is forgotten: redact it.
    Redact,
    /// The key is not at hand: leave the value sealed.
    Leave,
}

/// A sealed value found in a payload's text.
struct Sealed<'t> {
    /// Where it starts in the text, and its length.
    at: usize,
    len: usize,
    hex: &'t str,
    subject: std::borrow::Cow<'t, str>,
}

/// Every sealed value in `text`, in order. Every sealed value is
/// `{"$shredded":"<hex>","$subject":"<subject>"}`, as written by `encrypt`; a look-alike that
/// does not parse as one is skipped.
fn sealed_values(text: &str) -> impl Iterator<Item = Sealed<'_>> {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let at = from + SEALED.find(&text.as_bytes()[from..])?;
            match sealed_at(&text[at..]) {
                Some((hex, subject, len)) => {
                    from = at + len;
                    return Some(Sealed { at, len, hex, subject });
                }
                None => from = at + SEALED_START.len(),
            }
        }
    })
}

/// `text` with each sealed value opened or redacted as `key_for` its subject says, spliced in
/// place without parsing the rest of the payload; `None` if nothing changed.
fn splice<'k>(text: &str, mut key_for: impl FnMut(&str) -> Opening<'k>) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied = 0; // text[..copied] is in `out` (or unchanged, while `out` is None)
    let mut buffer = Vec::new();
    for sealed in sealed_values(text) {
        let plain = match key_for(&sealed.subject) {
            Opening::Leave => continue,
            Opening::Redact => None,
            Opening::With(cipher) => Some(())
                .filter(|()| unhex_into(sealed.hex, &mut buffer))
                .and_then(|()| open_in_place(cipher, &mut buffer))
                .and_then(|plain| std::str::from_utf8(plain).ok()),
        };
        let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
        out.push_str(&text[copied..sealed.at]);
        match plain {
            Some(json) => out.push_str(json),
            None => {
                out.push('"');
                out.push_str(REDACTED);
                out.push('"');
            }
        }
        copied = sealed.at + sealed.len;
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some(out)
}

/// The first pass: opens the values whose subject's key is cached and fresh.
pub(super) fn cached_opener(cache: KeyCache) -> PayloadOpener {
    Arc::new(move |text: &str| {
        SEALED.find(text.as_bytes())?;
        let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        splice(text, |subject| match cache.get(subject) {
            Some((at, cipher)) if now.duration_since(*at) < KEY_CACHE_TTL => Opening::With(cipher),
            _ => Opening::Leave,
        })
    })
}

impl<S: EventStore, K: KeyStore> Shredding<S, K> {
    /// The second pass: fetches the keys of the values still sealed in `events`, then opens
    /// them, or redacts them where the subject is forgotten.
    pub(super) async fn open_rest(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut keys: HashMap<String, Option<Aes256Gcm>> = HashMap::new();
        for e in &mut events {
            let text = e.payload.get();
            for sealed in sealed_values(text) {
                if !keys.contains_key(sealed.subject.as_ref()) {
                    let key = self.data_key(&sealed.subject, false).await?;
                    keys.insert(sealed.subject.into_owned(), key);
                }
            }
            let opened = splice(text, |subject| match keys.get(subject) {
                Some(Some(cipher)) => Opening::With(cipher),
                Some(None) => Opening::Redact,
                None => Opening::Leave,
            });
            if let Some(text) = opened {
                e.payload = parse_stored_payload(e.stream_id.as_str(), e.version, text)?;
            }
        }
        Ok(events)
    }
}
