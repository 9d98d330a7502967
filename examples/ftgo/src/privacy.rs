//! FTGO's personal data, as the book's Consumer Service holds it: a consumer's name and address
//! are stored encrypted under a data key of their own (crypto-shredding, `annals::privacy`), so
//! forgetting a consumer (`ftgo forget CONSUMER`, or `annals forget`) destroys the key and every
//! copy — events, parked messages, published messages — reads `[forgotten]`. Snapshots of
//! consumers are not taken, and the relay publishes the stored (sealed) events.

use annals::privacy::{AppendWithKeys, MasterKey, PersonalFields, Shredding};

/// The personal fields of FTGO's events: `ConsumerRegistered`'s `name` and `address`, whose
/// subject is its `consumer_id`.
pub fn fields() -> PersonalFields {
    PersonalFields::new()
        .field("Consumer", "ConsumerRegistered", "name", "consumer_id")
        .field("Consumer", "ConsumerRegistered", "address", "consumer_id")
}

/// The environment variable holding the master key (64 hex digits) that wraps consumers' keys.
pub const MASTER_KEY_VAR: &str = "FTGO_MASTER_KEY";

/// The example's own master key, used when [`MASTER_KEY_VAR`] is not set: fine for the demo and
/// tests, not for real data (anyone with this source can unwrap the keys).
const DEMO_KEY: [u8; 32] = *b"ftgo-example-master-key-for-demo";

/// The master key: from [`MASTER_KEY_VAR`] if set (an error if it is not 64 hex digits), else the
/// example's demo key.
pub fn master_key() -> Result<MasterKey, String> {
    match std::env::var(MASTER_KEY_VAR) {
        Ok(hex) => {
            let hex = hex.trim();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{MASTER_KEY_VAR} must be 64 hex digits (32 bytes)"));
            }
            let mut bytes = [0u8; 32];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
            }
            Ok(MasterKey::new("ftgo", bytes))
        }
        Err(_) => Ok(MasterKey::new("ftgo-demo", DEMO_KEY)),
    }
}

/// `store` with consumers' personal fields sealed (keys in the store itself).
pub fn sealed<S: AppendWithKeys + Clone>(store: S) -> Shredding<S, S> {
    let master = master_key().unwrap_or_else(|e| {
        tracing::error!("{e}; using the example's demo key");
        MasterKey::new("ftgo-demo", DEMO_KEY)
    });
    Shredding::in_store(store, fields(), master, vec![])
}
