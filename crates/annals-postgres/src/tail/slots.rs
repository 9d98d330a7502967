//! The replication slots and the publication a tailing relay streams from: their names, their
//! lag as `annals status` shows it, and dropping a relay's slot (`annals relay drop-slot`).

use annals::StoreError;

use crate::PostgresStore;

/// Names of the publication and of a relay's slot in `schema`.
pub fn publication_name(schema: &str) -> String {
    format!("annals_{schema}")
}

/// The replication slot of relay `name` in `schema` (`annals_<schema>_<name>`).
pub fn slot_name(schema: &str, name: &str) -> String {
    format!("annals_{schema}_{name}")
}

/// A replication slot of this store, as `annals status` shows it.
#[derive(Clone, Debug)]
pub struct SlotStatus {
    /// The slot.
    pub slot: String,
    /// Whether a relay is streaming from it now.
    pub active: bool,
    /// WAL bytes the server keeps for it: written since its confirmed position.
    pub lag_bytes: i64,
}

/// The slots of `store`'s relays and how far behind each is.
pub async fn slots(store: &PostgresStore) -> Result<Vec<SlotStatus>, StoreError> {
    let client = store.client().await?;
    let pattern = format!("annals\\_{}\\_%", store.schema());
    let rows = client
        .query(
            "SELECT slot_name::text, active,
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint
             FROM pg_replication_slots WHERE slot_name LIKE $1 ORDER BY slot_name",
            &[&pattern],
        )
        .await
        .map_err(crate::error::db)?;
    Ok(rows
        .iter()
        .map(|r| SlotStatus {
            slot: r.get(0),
            active: r.get(1),
            lag_bytes: r.get(2),
        })
        .collect())
}

/// What [`drop_slot`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The slot, if it existed.
    pub slot: Option<String>,
    /// The schema's publication, if it existed and no other relay's slot needed it.
    pub publication: Option<String>,
}

/// Drops relay `name`'s replication slot (so the server stops keeping WAL for it) and, once no
/// other relay of the store has a slot, the store's publication. A slot a relay is streaming
/// from is refused (a [`Conflict`](annals::ErrorKind::Conflict): stop that relay first). The
/// relay's cursor stays: a polling relay of the same name goes on from it, a tailing one creates
/// a new slot.
pub async fn drop_slot(store: &PostgresStore, name: &str) -> Result<Dropped, annals::Failure> {
    let b = |e| {
        let e = crate::error::db(e);
        annals::Failure::new(e.kind(), e.to_string()).with_source(e)
    };
    let schema = store.schema();
    let (publication, slot) = (publication_name(schema), slot_name(schema, name));
    let client = store
        .client()
        .await
        .map_err(|e| annals::Failure::new(e.kind(), e.to_string()).with_source(e))?;
    let row = client
        .query_opt(
            "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(b)?;
    let dropped_slot = match row {
        Some(r) if r.try_get::<_, bool>(0).map_err(b)? => {
            let pid: Option<i32> = r.try_get(1).map_err(b)?;
            return Err(annals::Failure::new(
                annals::ErrorKind::Conflict,
                format!(
                    "slot {slot} is in use by a running relay (server process {}): stop that relay first",
                    pid.unwrap_or(0)
                ),
            ));
        }
        Some(_) => {
            client
                .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await
                .map_err(b)?;
            Some(slot)
        }
        None => None,
    };
    let pattern = format!("annals\\_{schema}\\_%");
    let others: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
            &[&pattern],
        )
        .await
        .map_err(b)?
        .try_get(0)
        .map_err(b)?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&publication])
        .await
        .map_err(b)?
        .is_some();
    let dropped_publication = if exists && others == 0 {
        client
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {publication}"))
            .await
            .map_err(b)?;
        Some(publication)
    } else {
        None
    };
    Ok(Dropped {
        slot: dropped_slot,
        publication: dropped_publication,
    })
}
