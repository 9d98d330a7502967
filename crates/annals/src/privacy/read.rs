//! Reading through [`Shredding`]: sealed values are opened where they lie in the stored text.
//!
//! Two passes. The first runs inside the backend's read ([`EventStore::read_stream_opened`]):
//! values whose subject's key is in the cache are opened before the backend parses the text, so
//! the text is checked once. The second, after the read, fetches the keys that were not cached
//! and opens (or, for a forgotten subject, redacts) what is left.
//!
//! Each read gets its own opener: it takes the time once, looks each subject up in the shared
//! cache once (the first time the read meets it), and reuses one decoding buffer, so a payload
//! costs no clock read, no lock of the shared cache and no allocation beyond its own text.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Instant;

use memchr::memmem::Finder;

use super::codec::{SEALED_PREFIX, decode_into, open_in_place, sealed_at};
use super::{DataKey, KeyStore, REDACTED, Shredding, fresh};
use crate::error::StoreError;
use crate::event::{PayloadOpener, RecordedEvent, parse_stored_payload};
use crate::store::EventStore;

/// Data keys unwrapped lately, by subject, with when.
pub(super) type KeyCache = Arc<Mutex<HashMap<String, (Instant, DataKey)>>>;

static SEALED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(SEALED_PREFIX));

/// What to do with the values sealed for a subject.
enum Opening {
    /// Open them with this key.
    With(DataKey),
    /// The subject is forgotten: redact them.
    Redact,
    /// The key is not at hand: leave them sealed.
    Leave,
}

/// A sealed value found in a payload's text.
struct Sealed<'t> {
    /// Where it starts in the text.
    at: usize,
    value: super::codec::SealedText<'t>,
}

/// Every sealed value in `text`, in order. A look-alike that does not parse as one is skipped.
fn sealed_values(text: &str) -> impl Iterator<Item = Sealed<'_>> {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let at = from + SEALED.find(&text.as_bytes()[from..])?;
            match sealed_at(&text[at..]) {
                Some(value) => {
                    from = at + value.len;
                    return Some(Sealed { at, value });
                }
                None => from = at + SEALED_PREFIX.len(),
            }
        }
    })
}

/// What one pass knows: the openings of the subjects it has met (few per read: looked up in a
/// list), and a buffer to decode into.
#[derive(Default)]
struct Pass {
    openings: Vec<(String, Opening)>,
    buffer: Vec<u8>,
}

/// More subjects than this in one pass and the list starts over (each is looked up again). Small:
/// a read of many subjects (a projection over the global log) should pay a few comparisons per
/// value on top of the shared cache's lookup, not a long scan.
const PASS_SUBJECTS: usize = 8;

impl Pass {
    /// `text` with each sealed value opened or redacted as its subject's opening says (`resolve`
    /// gives the opening of a subject met for the first time), spliced in place without parsing
    /// the rest of the payload; `None` if nothing changed.
    fn splice(&mut self, text: &str, mut resolve: impl FnMut(&str) -> Opening) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0; // text[..copied] is in `out` (or unchanged, while `out` is None)
        for sealed in sealed_values(text) {
            let subject = sealed.value.subject.as_ref();
            let known = self.openings.iter().position(|(s, _)| s == subject);
            let i = known.unwrap_or_else(|| {
                if self.openings.len() == PASS_SUBJECTS {
                    self.openings.clear();
                }
                self.openings.push((subject.to_owned(), resolve(subject)));
                self.openings.len() - 1
            });
            let plain = match &self.openings[i].1 {
                Opening::Leave => continue,
                Opening::Redact => None,
                Opening::With(cipher) => Some(())
                    .filter(|()| decode_into(sealed.value.encoding, sealed.value.data, &mut self.buffer))
                    .and_then(|()| open_in_place(cipher, &mut self.buffer))
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
            copied = sealed.at + sealed.value.len;
        }
        let mut out = out?;
        out.push_str(&text[copied..]);
        Some(out)
    }
}

/// The first pass, for one read: opens the values whose subject's key is in `cache` and was fresh
/// when the read began.
pub(super) fn cached_opener(cache: &KeyCache) -> PayloadOpener {
    let cache = cache.clone();
    let began = Instant::now();
    let pass = Mutex::new(Pass::default());
    Arc::new(move |text: &str| {
        SEALED.find(text.as_bytes())?;
        let mut pass = pass.lock().unwrap_or_else(PoisonError::into_inner);
        pass.splice(text, |subject| {
            let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            match cache.get(subject) {
                Some((at, cipher)) if fresh(*at, began) => Opening::With(cipher.clone()),
                _ => Opening::Leave,
            }
        })
    })
}

impl<S: EventStore, K: KeyStore> Shredding<S, K> {
    /// The second pass: fetches the keys of the values still sealed in `events`, then opens
    /// them, or redacts them where the subject is forgotten.
    pub(super) async fn open_rest(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut keys: HashMap<String, Option<DataKey>> = HashMap::new();
        let mut pass = Pass::default();
        for e in &mut events {
            let text = e.payload.get();
            for sealed in sealed_values(text) {
                let subject = sealed.value.subject;
                if !keys.contains_key(subject.as_ref()) {
                    let key = self.data_key(&subject, false).await?;
                    keys.insert(subject.into_owned(), key);
                }
            }
            let resolve = |subject: &str| match keys.get(subject) {
                Some(Some(cipher)) => Opening::With(cipher.clone()),
                Some(None) => Opening::Redact,
                None => Opening::Leave,
            };
            let opened = pass.splice(text, resolve);
            if let Some(text) = opened {
                e.payload = parse_stored_payload(e.stream_id.as_str(), e.version, text)?;
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use aes_gcm::{Aes256Gcm, KeyInit};

    use super::super::KEY_CACHE_TTL;
    use super::super::codec::{base64, hex, seal};
    use super::*;

    fn cipher(n: u8) -> Aes256Gcm {
        Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from([n; 32]))
    }

    fn sealed_b64(c: &Aes256Gcm, json: &str, subject: &str) -> String {
        format!(
            r#"{{"$sealed":"{}","$subject":"{subject}"}}"#,
            base64(&seal(c, json.as_bytes()))
        )
    }

    #[test]
    fn values_sealed_in_hex_before_base64_still_open() {
        let c = cipher(1);
        let old = format!(r#"{{"$shredded":"{}","$subject":"s-1"}}"#, hex(&seal(&c, br#""old""#)));
        let text = format!(
            r#"{{"a":{old},"b":{},"c":3}}"#,
            sealed_b64(&c, r#"{"new":true}"#, "s-1")
        );
        let opened = Pass::default().splice(&text, |_| Opening::With(Arc::new(c.clone())));
        assert_eq!(opened.as_deref(), Some(r#"{"a":"old","b":{"new":true},"c":3}"#));
    }

    #[test]
    fn a_pass_looks_each_subject_up_once() {
        let (c1, c2) = (cipher(1), cipher(2));
        let mut pass = Pass::default();
        let mut asked = Vec::new();
        for (subject, c) in [("s-1", &c1), ("s-2", &c2), ("s-1", &c1), ("s-2", &c2)] {
            let text = format!(r#"{{"x":{}}}"#, sealed_b64(c, r#""v""#, subject));
            let resolve = |s: &str| {
                asked.push(s.to_owned());
                Opening::With(Arc::new(if s == "s-1" { c1.clone() } else { c2.clone() }))
            };
            let opened = pass.splice(&text, resolve);
            assert_eq!(opened.as_deref(), Some(r#"{"x":"v"}"#));
        }
        assert_eq!(asked, ["s-1", "s-2"]);
    }

    #[test]
    fn a_pass_over_more_subjects_than_it_keeps_still_opens_every_value() {
        let ciphers: Vec<Aes256Gcm> = (0..3 * PASS_SUBJECTS as u8).map(cipher).collect();
        let mut pass = Pass::default();
        for round in 0..2 {
            for (i, c) in ciphers.iter().enumerate() {
                let text = format!(r#"{{"x":{}}}"#, sealed_b64(c, &i.to_string(), &format!("s-{i}")));
                let resolve = |s: &str| {
                    let i: usize = s.trim_start_matches("s-").parse().unwrap();
                    Opening::With(Arc::new(ciphers[i].clone()))
                };
                let opened = pass.splice(&text, resolve);
                assert_eq!(opened, Some(format!(r#"{{"x":{i}}}"#)), "round {round}, subject {i}");
            }
            assert!(pass.openings.len() <= PASS_SUBJECTS);
        }
    }

    #[test]
    fn forgotten_subjects_are_redacted_unknown_ones_left_and_bad_values_redacted() {
        let (c1, c2) = (cipher(1), cipher(2));
        let later = sealed_b64(&c1, "2", "later");
        let text = format!(
            r#"{{"gone":{},"later":{later},"tampered":{}}}"#,
            sealed_b64(&c1, "1", "gone"),
            sealed_b64(&c1, "3", "wrong-key"),
        );
        let resolve = |s: &str| match s {
            "gone" => Opening::Redact,
            "later" => Opening::Leave,
            _ => Opening::With(Arc::new(c2.clone())),
        };
        let opened = Pass::default().splice(&text, resolve);
        assert_eq!(
            opened.unwrap(),
            format!(r#"{{"gone":"{REDACTED}","later":{later},"tampered":"{REDACTED}"}}"#)
        );
    }

    #[test]
    fn the_first_pass_uses_only_keys_fresh_when_the_read_began() {
        let c = cipher(1);
        let cache = KeyCache::default();
        let text = format!(r#"{{"x":{}}}"#, sealed_b64(&c, "7", "s-1"));
        let stale = Instant::now().checked_sub(KEY_CACHE_TTL * 2).unwrap();
        cache.lock().unwrap().insert("s-1".into(), (stale, Arc::new(c.clone())));
        assert_eq!(cached_opener(&cache)(&text), None, "a stale key is not used");
        cache
            .lock()
            .unwrap()
            .insert("s-1".into(), (Instant::now(), Arc::new(c)));
        let opener = cached_opener(&cache);
        assert_eq!(opener(&text).as_deref(), Some(r#"{"x":7}"#));
        assert_eq!(opener(r#"{"x":1}"#), None, "a payload with nothing sealed is left");
    }
}
