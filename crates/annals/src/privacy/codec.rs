//! How a personal field is stored, and how it is found and opened again in a stored payload's
//! text.
//!
//! A sealed value is `{"$sealed":"<base64url of nonce, ciphertext and tag>","$subject":"<subject>"}`
//! (AES-256-GCM, a fresh 96-bit nonce per value; base64url without padding, so the text needs no
//! JSON escapes). Values written before 2026-11-25 are `{"$shredded":"<hex …>","$subject":…}`:
//! they are read as before, never rewritten (events are immutable). Base64 makes a sealed value a
//! third shorter than hex and quicker to decode.

use aes_gcm::aead::{Aead, AeadInOut, Generate};
use aes_gcm::{Aes256Gcm, Nonce};

/// The key a sealed value's data is written under.
pub(super) const SEALED: &str = "$sealed";
/// The text every sealed value starts with, whichever its encoding: `{"$s`.
pub(super) const SEALED_PREFIX: &str = "{\"$s";
const BASE64_START: &str = "{\"$sealed\":\"";
const HEX_START: &str = "{\"$shredded\":\"";

/// How a sealed value's bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    /// `$sealed`: base64url without padding (written since 2026-11-25).
    Base64,
    /// `$shredded`: lowercase hex (written before).
    Hex,
}

/// A sealed value found at the start of a text.
pub(super) struct SealedText<'t> {
    pub(super) encoding: Encoding,
    /// The encoded nonce, ciphertext and tag.
    pub(super) data: &'t str,
    pub(super) subject: std::borrow::Cow<'t, str>,
    /// The value's length in the text, in bytes.
    pub(super) len: usize,
}

/// The sealed value at the start of `text`, if one is there.
pub(super) fn sealed_at(text: &str) -> Option<SealedText<'_>> {
    let (encoding, after) = if let Some(after) = text.strip_prefix(BASE64_START) {
        (Encoding::Base64, after)
    } else {
        (Encoding::Hex, text.strip_prefix(HEX_START)?)
    };
    let data_end = after.find('"')?;
    let data = &after[..data_end];
    let tail = after[data_end..].strip_prefix("\",\"$subject\":\"")?;
    // The subject is a JSON string: find its closing quote, past escapes.
    let mut escaped = false;
    let mut end = None;
    for (i, c) in tail.bytes().enumerate() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let raw = &tail[..end];
    let subject = if raw.contains('\\') {
        std::borrow::Cow::Owned(serde_json::from_str(&format!("\"{raw}\"")).ok()?)
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    let rest = tail[end + 1..].strip_prefix('}')?;
    Some(SealedText {
        encoding,
        data,
        subject,
        len: text.len() - rest.len(),
    })
}

/// Decodes `text` written in `encoding` into `out` (cleared first); false if it is not such text.
pub(super) fn decode_into(encoding: Encoding, text: &str, out: &mut Vec<u8>) -> bool {
    match encoding {
        Encoding::Base64 => unbase64_into(text, out),
        Encoding::Hex => unhex_into(text, out),
    }
}

const BASE64_DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `bytes` in base64url without padding.
pub(super) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(BASE64_DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url without padding into `out` (cleared first); false if `text` is not such
/// text (a wrong length, a character outside the alphabet, or stray bits in the last digit).
pub(super) fn unbase64_into(text: &str, out: &mut Vec<u8>) -> bool {
    const VALUES: [u8; 256] = digit_values(BASE64_DIGITS);
    out.clear();
    let bytes = text.as_bytes();
    if bytes.len() % 4 == 1 {
        return false;
    }
    out.reserve(bytes.len() / 4 * 3 + 2);
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        let (a, b, d, e) = (
            VALUES[usize::from(c[0])],
            VALUES[usize::from(c[1])],
            VALUES[usize::from(c[2])],
            VALUES[usize::from(c[3])],
        );
        if (a | b | d | e) > 63 {
            return false;
        }
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(d) << 6 | u32::from(e);
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut n = 0u32;
        for (i, c) in rest.iter().enumerate() {
            let v = VALUES[usize::from(*c)];
            if v == BAD {
                return false;
            }
            n |= u32::from(v) << (18 - 6 * i);
        }
        let whole = rest.len() - 1; // 2 digits: 1 byte, 3 digits: 2 bytes
        // The bits past the last whole byte must be zero, so each value has one spelling.
        if n << (8 * whole) & 0x00ff_ffff != 0 {
            return false;
        }
        out.extend((0..whole).map(|i| (n >> (16 - 8 * i)) as u8));
    }
    true
}

/// Marks a byte that is no digit of an alphabet in [`digit_values`]' table.
const BAD: u8 = 0xff;

/// Each byte's value as a digit of `digits` (its index there), [`BAD`] for any other byte.
const fn digit_values(digits: &[u8]) -> [u8; 256] {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < digits.len() {
        t[digits[i] as usize] = i as u8;
        i += 1;
    }
    t
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` in lowercase hex.
#[cfg(test)]
pub(super) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX_DIGITS[usize::from(b >> 4)] as char);
        out.push(HEX_DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Decodes lowercase hex into `out` (cleared first); false if `text` is not such hex.
pub(super) fn unhex_into(text: &str, out: &mut Vec<u8>) -> bool {
    const NIBBLES: [u8; 256] = digit_values(HEX_DIGITS);
    out.clear();
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return false;
    }
    for pair in bytes.chunks_exact(2) {
        let (hi, lo) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        if hi == BAD || lo == BAD {
            return false;
        }
        out.push(hi << 4 | lo);
    }
    true
}

pub(super) fn seal(cipher: &Aes256Gcm, plain: &[u8]) -> Vec<u8> {
    let nonce = Nonce::generate();
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(&nonce, plain).expect("AES-GCM encrypts any input"));
    out
}

/// Opens `sealed` (nonce, ciphertext, tag) into a new buffer.
pub(super) fn open(cipher: &Aes256Gcm, sealed: &[u8]) -> Option<Vec<u8>> {
    let mut buffer = sealed.to_vec();
    open_in_place(cipher, &mut buffer).map(<[u8]>::to_vec)
}

/// Opens `sealed` (nonce, ciphertext, tag) where it lies; the plaintext is the returned slice.
pub(super) fn open_in_place<'a>(cipher: &Aes256Gcm, sealed: &'a mut [u8]) -> Option<&'a [u8]> {
    let (nonce, rest) = sealed.split_at_mut_checked(12)?;
    let (msg, tag) = rest.split_at_mut_checked(rest.len().checked_sub(16)?)?;
    let tag = aes_gcm::Tag::try_from(&*tag).ok()?;
    cipher
        .decrypt_inout_detached(&Nonce::try_from(&*nonce).ok()?, b"", msg.into(), &tag)
        .ok()?;
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let text = base64(&bytes);
            prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            let mut out = Vec::new();
            prop_assert!(unbase64_into(&text, &mut out));
            prop_assert_eq!(out, bytes);
        }

        #[test]
        fn any_text_decodes_to_its_one_spelling_or_is_refused(text in "[A-Za-z0-9_+/=-]{0,12}|\\PC{0,12}") {
            let mut out = Vec::new();
            if unbase64_into(&text, &mut out) {
                prop_assert_eq!(base64(&out), text);
            }
        }

        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut out = Vec::new();
            prop_assert!(unhex_into(&hex(&bytes), &mut out));
            prop_assert_eq!(out, bytes);
        }
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn bad_base64_is_refused() {
        let mut out = Vec::new();
        // A length no bytes give, padding, the other alphabet's digits, and stray bits in the
        // last digit ("Zh" for "Zg", "Zm9" for "Zm8"): each value has one spelling.
        for bad in ["Z", "Zm9vY", "Zm9v=", "Zm+v", "Zm/v", "Zh", "Zm9", "Zm9v\n"] {
            assert!(!unbase64_into(bad, &mut out), "{bad:?} decoded to {out:?}");
        }
        assert!(unbase64_into("Zg", &mut out) && out == b"f");
        assert!(unbase64_into("Zm8", &mut out) && out == b"fo");
    }

    #[test]
    fn sealed_values_are_found_in_both_encodings() {
        let b = sealed_at(r#"{"$sealed":"AAEC","$subject":"c-1"},"x":1"#).unwrap();
        assert_eq!(
            (b.encoding, b.data, b.subject.as_ref(), b.len),
            (Encoding::Base64, "AAEC", "c-1", 35)
        );
        let h = sealed_at(r#"{"$shredded":"000102","$subject":"c\"2"}"#).unwrap();
        assert_eq!(
            (h.encoding, h.data, h.subject.as_ref()),
            (Encoding::Hex, "000102", "c\"2")
        );
        assert!(sealed_at(r#"{"$sealed":"AAEC"}"#).is_none());
        assert!(sealed_at(r#"{"$sub":"x"}"#).is_none());
    }
}
