//! The order-history read model in the store's SQLite file.

use annals::RecordedEvent;
use annals::error::BoxError;
use annals_sqlite::projection::SqliteProjection;
use annals_sqlite::rusqlite::{self, Connection, OptionalExtension, Transaction, params};

use super::{ConsumerOrders, NAME, OrderSummary, fold, parse_state, state_name};

/// The projection (see the module docs of [`super`]).
#[derive(Debug, Default)]
pub struct OrderHistory;

const COLUMNS: &str = "order_id, consumer_id, restaurant_id, state, total_cents, line_items, events, last_position";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderSummary> {
    Ok(OrderSummary {
        order_id: r.get(0)?,
        consumer_id: r.get(1)?,
        restaurant_id: r.get(2)?,
        state: parse_state(&r.get::<_, String>(3)?),
        total_cents: r.get(4)?,
        line_items: r.get(5)?,
        events: r.get(6)?,
        last_position: r.get(7)?,
    })
}

impl SqliteProjection for OrderHistory {
    fn name(&self) -> &str {
        NAME
    }

    fn setup(&mut self, tx: &Transaction<'_>) -> Result<(), BoxError> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS order_history (
                 order_id TEXT PRIMARY KEY, consumer_id TEXT NOT NULL, restaurant_id TEXT NOT NULL,
                 state TEXT NOT NULL, total_cents INTEGER NOT NULL, line_items INTEGER NOT NULL,
                 events INTEGER NOT NULL, last_position INTEGER NOT NULL) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS order_history_by_consumer ON order_history (consumer_id, order_id);",
        )?;
        Ok(())
    }

    fn reset(&mut self, tx: &Transaction<'_>) -> Result<(), BoxError> {
        tx.execute_batch("DROP TABLE IF EXISTS order_history")?;
        Ok(())
    }

    fn apply(&mut self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), BoxError> {
        let current = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM order_history WHERE order_id = ?1"))?
            .query_row([event.stream_id.as_str()], row)
            .optional()?;
        if let Some(r) = fold(current, event)? {
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO order_history ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                r.order_id,
                r.consumer_id,
                r.restaurant_id,
                state_name(r.state),
                r.total_cents,
                r.line_items,
                r.events,
                r.last_position
            ])?;
        }
        Ok(())
    }
}

/// A consumer's orders and totals (`None` consumer: every order).
pub fn orders_of(conn: &Connection, consumer: Option<&str>) -> Result<ConsumerOrders, BoxError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM order_history WHERE ?1 IS NULL OR consumer_id = ?1 ORDER BY order_id"
    ))?;
    let rows = stmt.query_map([consumer], row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(ConsumerOrders::from_rows(rows))
}
