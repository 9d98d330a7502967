//! The order-history read model in the store's PostgreSQL schema. A batch is folded in memory
//! (after one query for the rows it touches) and written with one `UNNEST` upsert.

use std::collections::HashMap;

use annals::RecordedEvent;
use annals::error::BoxError;
use annals_postgres::projection::PgProjection;
use annals_postgres::tokio_postgres::{GenericClient, Row, Transaction};

use super::{ConsumerOrders, NAME, OrderSummary, fold, parse_state, state_name};

/// The projection (see the module docs of [`super`]).
#[derive(Debug, Default)]
pub struct OrderHistory;

const COLUMNS: &str = "order_id, consumer_id, restaurant_id, state, total_cents, line_items, events, last_position";

fn row(r: &Row) -> OrderSummary {
    OrderSummary {
        order_id: r.get(0),
        consumer_id: r.get(1),
        restaurant_id: r.get(2),
        state: parse_state(r.get(3)),
        total_cents: r.get(4),
        line_items: r.get(5),
        events: r.get(6),
        last_position: r.get(7),
    }
}

impl PgProjection for OrderHistory {
    fn name(&self) -> &str {
        NAME
    }

    async fn setup(&self, tx: &Transaction<'_>) -> Result<(), BoxError> {
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS order_history (
                 order_id text PRIMARY KEY, consumer_id text NOT NULL, restaurant_id text NOT NULL,
                 state text NOT NULL, total_cents bigint NOT NULL, line_items bigint NOT NULL,
                 events bigint NOT NULL, last_position bigint NOT NULL);
             CREATE INDEX IF NOT EXISTS order_history_by_consumer ON order_history (consumer_id, order_id);",
        )
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &Transaction<'_>) -> Result<(), BoxError> {
        tx.batch_execute("DROP TABLE IF EXISTS order_history").await?;
        Ok(())
    }

    async fn apply(&self, tx: &Transaction<'_>, events: &[RecordedEvent]) -> Result<(), BoxError> {
        let ids: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
        let select = tx
            .prepare(&format!("SELECT {COLUMNS} FROM order_history WHERE order_id = ANY($1)"))
            .await?;
        let mut rows: HashMap<String, OrderSummary> = tx
            .query(&select, &[&ids])
            .await?
            .iter()
            .map(|r| {
                let r = row(r);
                (r.order_id.clone(), r)
            })
            .collect();
        let mut touched = Vec::new();
        for e in events {
            let id = e.stream_id.as_str();
            if let Some(r) = fold(rows.remove(id), e)? {
                if !touched.iter().any(|t| t == id) {
                    touched.push(id.to_owned());
                }
                rows.insert(id.to_owned(), r);
            }
        }
        let changed: Vec<&OrderSummary> = touched.iter().filter_map(|id| rows.get(id)).collect();
        if changed.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&OrderSummary) -> String| changed.iter().map(|r| f(r)).collect::<Vec<String>>();
        let num = |f: fn(&OrderSummary) -> i64| changed.iter().map(|r| f(r)).collect::<Vec<i64>>();
        let upsert = tx
            .prepare(&format!(
                "INSERT INTO order_history ({COLUMNS})
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
                 ON CONFLICT (order_id) DO UPDATE SET consumer_id = excluded.consumer_id,
                     restaurant_id = excluded.restaurant_id, state = excluded.state,
                     total_cents = excluded.total_cents, line_items = excluded.line_items,
                     events = excluded.events, last_position = excluded.last_position"
            ))
            .await?;
        tx.execute(
            &upsert,
            &[
                &col(|r| r.order_id.clone()),
                &col(|r| r.consumer_id.clone()),
                &col(|r| r.restaurant_id.clone()),
                &col(|r| state_name(r.state)),
                &num(|r| r.total_cents),
                &num(|r| r.line_items),
                &num(|r| r.events),
                &num(|r| r.last_position),
            ],
        )
        .await?;
        Ok(())
    }
}

/// A consumer's orders and totals (`None` consumer: every order).
pub async fn orders_of(client: &impl GenericClient, consumer: Option<&str>) -> Result<ConsumerOrders, BoxError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM order_history WHERE $1::text IS NULL OR consumer_id = $1 ORDER BY order_id"
            ),
            &[&consumer],
        )
        .await?;
    Ok(ConsumerOrders::from_rows(rows.iter().map(row).collect()))
}
