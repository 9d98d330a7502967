//! How a personal field is stored: `{"$shredded":"<hex of nonce, ciphertext and tag>",
//! "$subject":"<subject>"}` (AES-256-GCM, a fresh 96-bit nonce per value), and how it is found
//! and opened again in a stored payload's text.

use aes_gcm::aead::{Aead, AeadInOut, Generate};
use aes_gcm::{Aes256Gcm, Nonce};

/// How a sealed value starts in a stored payload.
pub(super) const SEALED_START: &str = "{\"$shredded\":\"";

/// The sealed value at the start of `text`: its hex, its subject and its length in bytes.
pub(super) fn sealed_at(text: &str) -> Option<(&str, std::borrow::Cow<'_, str>, usize)> {
    let after = &text[SEALED_START.len()..];
    let hex_end = after.find('"')?;
    let hex_text = &after[..hex_end];
    let tail = after[hex_end..].strip_prefix("\",\"$subject\":\"")?;
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
    Some((hex_text, subject, text.len() - rest.len()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Decodes lowercase hex into `out` (cleared first); false if `text` is not such hex.
pub(super) fn unhex_into(text: &str, out: &mut Vec<u8>) -> bool {
    const BAD: u8 = 0xff;
    const NIBBLES: [u8; 256] = {
        let mut t = [BAD; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
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
