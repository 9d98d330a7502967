//! Decoding the `pgoutput` messages the tailing relay needs (protocol version 1, text format):
//! `Relation` (a table's columns, sent before its first change) and `Insert`. Begin and Commit
//! come already decoded from `pgwire-replication`; other messages are ignored.

use std::collections::HashMap;

/// A table as the server described it: its schema, name and column names in order.
#[derive(Clone, Debug)]
pub(super) struct Relation {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// One inserted row: each column's text (None for NULL).
#[derive(Debug)]
pub(super) struct Insert {
    pub relation: u32,
    pub values: Vec<Option<String>>,
}

/// What one message was.
#[derive(Debug)]
pub(super) enum Message {
    Relation(u32, Relation),
    Insert(Insert),
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("pgoutput message cut short (wanted {n} more bytes)"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn cstring(&mut self) -> Result<String, String> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or("pgoutput string without its terminator")?;
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }
}

/// Decodes one pgoutput message.
pub(super) fn decode(data: &[u8]) -> Result<Message, String> {
    let mut r = Reader { buf: data };
    match r.u8()? {
        b'R' => {
            let oid = r.i32()? as u32;
            let schema = r.cstring()?;
            let name = r.cstring()?;
            let _replica_identity = r.u8()?;
            let n = r.i16()?.max(0) as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let _flags = r.u8()?;
                columns.push(r.cstring()?);
                let _type_oid = r.i32()?;
                let _type_modifier = r.i32()?;
            }
            Ok(Message::Relation(oid, Relation { schema, name, columns }))
        }
        b'I' => {
            let relation = r.i32()? as u32;
            if r.u8()? != b'N' {
                return Err("pgoutput insert without a new tuple".into());
            }
            let n = r.i16()?.max(0) as usize;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                values.push(match r.u8()? {
                    b'n' | b'u' => None,
                    b't' | b'b' => {
                        let len = r.i32()?.max(0) as usize;
                        Some(String::from_utf8_lossy(r.take(len)?).into_owned())
                    }
                    k => return Err(format!("unknown pgoutput column kind {:?}", k as char)),
                });
            }
            Ok(Message::Insert(Insert { relation, values }))
        }
        _ => Ok(Message::Other),
    }
}

/// An inserted row's columns by name.
pub(super) fn by_name<'a>(relation: &'a Relation, insert: &'a Insert) -> HashMap<&'a str, Option<&'a str>> {
    relation
        .columns
        .iter()
        .map(String::as_str)
        .zip(insert.values.iter().map(Option::as_deref))
        .collect()
}

/// Parses PostgreSQL's text form of a `timestamptz` (`2026-11-24 21:50:01.123456+00`, offsets
/// like `+05:30` too) into microseconds since the Unix epoch.
pub(super) fn timestamptz_micros(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(' ')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let tz_at = rest.rfind(['+', '-'])?;
    let (time, tz) = rest.split_at(tz_at);
    let mut t = time.split(':');
    let (hh, mm): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec_text = t.next()?;
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let ss: i64 = whole.parse().ok()?;
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let sign = if tz.starts_with('-') { -1 } else { 1 };
    let mut o = tz[1..].split(':');
    let off_h: i64 = o.next()?.parse().ok()?;
    let off_m: i64 = o.next().map_or(Some(0), |v| v.parse().ok())?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, mm_) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm_ + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3_600 + mm * 60 + ss - sign * (off_h * 3_600 + off_m * 60);
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::timestamptz_micros;

    #[test]
    fn timestamps_parse_with_offsets_and_fractions() {
        assert_eq!(timestamptz_micros("1970-01-01 00:00:00+00"), Some(0));
        assert_eq!(timestamptz_micros("1970-01-01 00:00:01.5+00"), Some(1_500_000));
        assert_eq!(timestamptz_micros("1970-01-01 05:30:00+05:30"), Some(0));
        assert_eq!(
            timestamptz_micros("2026-11-24 21:50:01.123456+00"),
            Some(1_795_557_001_123_456)
        );
        assert_eq!(
            timestamptz_micros("2026-11-24 16:50:01.123456-05"),
            Some(1_795_557_001_123_456)
        );
        assert_eq!(timestamptz_micros("not a time"), None);
    }
}
