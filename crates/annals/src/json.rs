//! The one JSON policy: what a payload, a snapshot's state or a parked message may hold, checked
//! when it is appended by the same parser and the same limits every read uses.
//!
//! A payload is stored as the text it was given ([`RawValue`]), and every read hands that text
//! back as it is (a 30-digit integer comes back digit for digit). But some readers parse it into
//! a tree (`serde_json::Value`, a typed event), and serde_json refuses, on reading, three things
//! its syntax check lets through: a number too large for an `f64` (`1e999`), a string escape
//! that is half of a UTF-16 surrogate pair (`"\ud800"`), and nesting 128 levels deep or more.
//! Such a payload, once stored, would fail on every read for ever; so an append is refused if its
//! text does not pass the same parse, and nothing is stored.
//!
//! The check walks the text once without building a tree (no allocation but for strings with
//! escapes), so it costs less than the parse a reader does.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// How deep arrays and objects may nest: serde_json's own limit when it reads into a tree (it
/// refuses the 128th level).
pub const MAX_DEPTH: usize = 127;

/// Checks JSON text against the policy; the error says what is wrong and where (line, column).
pub fn check(text: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    Walk.deserialize(&mut de).map_err(describe)?;
    de.end().map_err(describe)
}

/// Checks a payload already known to be JSON syntax (a [`RawValue`]).
pub fn check_raw(value: &RawValue) -> Result<(), String> {
    check(value.get())
}

/// serde_json's words, with the two it uses for this policy made plainer.
fn describe(e: serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("recursion limit exceeded") {
        format!("nested deeper than {MAX_DEPTH} levels ({text})")
    } else if text.starts_with("number out of range") {
        format!("a number too large for a 64-bit float ({text})")
    } else if text.contains("surrogate") || text.contains("hex escape") {
        format!("a \\u escape that is half of a UTF-16 surrogate pair, not a character ({text})")
    } else {
        text
    }
}

/// Visits every value of a document and keeps nothing. serde_json's `deserialize_any` parses
/// numbers (refusing those out of range), decodes string escapes (refusing lone surrogates) and
/// counts depth (refusing past its limit) exactly as it does when it builds a `Value`.
#[derive(Clone, Copy)]
struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Walk)?.is_some() {
            map.next_value_seed(Walk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn what_a_tree_parse_refuses_is_refused() {
        for (bad, says) in [
            (r#"{"a":1e999}"#, "too large"),
            (r#"{"a":-1e400}"#, "too large"),
            (r#"{"a":"\ud800"}"#, "surrogate"),
            (r#"{"a":"\udc00x"}"#, "surrogate"),
            (r#"{"\ud800":1}"#, "surrogate"),
            (r#"{"a":1} x"#, "trailing"),
            ("", "EOF"),
        ] {
            let why = check(bad).expect_err(bad);
            assert!(why.contains(says), "{bad}: {why}");
            if let Ok(raw) = RawValue::from_string(bad.to_owned()) {
                assert!(
                    serde_json::from_str::<serde_json::Value>(raw.get()).is_err(),
                    "{bad}: the policy refuses only what a tree parse refuses"
                );
            }
        }
        let deep = nested(MAX_DEPTH + 1);
        assert!(check(&deep).unwrap_err().contains("deeper than 127"));
        assert!(serde_json::from_str::<serde_json::Value>(&deep).is_err());
    }

    #[test]
    fn what_a_tree_parse_reads_is_accepted() {
        for good in [
            r#"{"a":1e308,"b":-0.0,"c":123456789012345678901234567890}"#,
            r#"{"pair":"\ud83d\ude00","nul":"\u0000","text":"ünïcode"}"#,
            "[]",
            "null",
            "12",
            &nested(MAX_DEPTH),
        ] {
            check(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            serde_json::from_str::<serde_json::Value>(good).unwrap();
        }
    }
}
