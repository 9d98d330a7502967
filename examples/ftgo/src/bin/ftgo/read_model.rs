//! FTGO's read side from the command line: the order-history projection (run, follow, rebuild)
//! and its query, `orders`.

use annals_cli::backend::AnyStore;
use annals_cli::output::out;
use annals_cli::projection::{Mode, drive};
use annals_postgres::projection::PgProjector;
use annals_sqlite::projection::SqliteProjector;
use ftgo::order_history;

/// `ftgo projection …`.
#[derive(clap::Subcommand)]
pub(crate) enum ProjectionAction {
    /// Catch up from the checkpoint; with --follow, keep applying new events until Ctrl-C or
    /// SIGTERM.
    Run {
        /// The projection (known: order-history).
        name: String,
        /// Keep following the log.
        #[arg(long)]
        follow: bool,
        /// Events per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
    },
    /// Drop the read model and replay the whole log into it, with a progress bar.
    Rebuild {
        /// The projection (known: order-history).
        name: String,
        /// Events per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
    },
}

/// `ftgo projection run|rebuild NAME`.
pub(crate) async fn projection(store: AnyStore, action: ProjectionAction, json: bool) -> anyhow::Result<()> {
    let (name, mode, batch) = match action {
        ProjectionAction::Run { name, follow, batch } => {
            (name, if follow { Mode::Follow } else { Mode::CatchUp }, batch)
        }
        ProjectionAction::Rebuild { name, batch } => (name, Mode::Rebuild, batch),
    };
    if name != order_history::NAME {
        return Err(annals_cli::exit::not_found(format!(
            "unknown projection {name:?}; known: {}",
            order_history::NAME
        )));
    }
    let only = ["Order"];
    match &store {
        AnyStore::Sqlite(s) => {
            let p = SqliteProjector::new(s.clone(), order_history::sqlite::OrderHistory).await?;
            if mode == Mode::Rebuild {
                p.reset().await?;
            }
            drive(store.clone(), p, &only, mode, batch, json).await?;
        }
        AnyStore::Postgres(s) => {
            let p = PgProjector::new(s.clone(), order_history::postgres::OrderHistory).await?;
            if mode == Mode::Rebuild {
                p.reset().await?;
            }
            drive(store.clone(), p, &only, mode, batch, json).await?;
        }
        AnyStore::Memory(_) => {
            return Err(annals_cli::exit::invalid(
                "projections need a store that outlives the command: a SQLite file or PostgreSQL",
            ));
        }
    }
    Ok(())
}

/// `ftgo orders [--consumer ID]`: the order-history read model.
pub(crate) async fn orders(store: &AnyStore, consumer: Option<&str>, json: bool) -> anyhow::Result<()> {
    use annals::consume::Checkpoints;
    if store.load_checkpoint(order_history::NAME).await?.is_none() {
        return Err(annals_cli::exit::not_found(format!(
            "the {} read model has not been built here: `ftgo projection run {}` builds it",
            order_history::NAME,
            order_history::NAME
        )));
    }
    let answer = match store {
        AnyStore::Sqlite(s) => {
            let consumer = consumer.map(str::to_owned);
            s.read_with(move |conn| {
                order_history::sqlite::orders_of(conn, consumer.as_deref()).map_err(annals::StoreError::backend)
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e} (has `ftgo projection run order-history` run yet?)"))?
        }
        AnyStore::Postgres(s) => {
            let client = s.client().await?;
            order_history::postgres::orders_of(&**client, consumer)
                .await
                .map_err(|e| anyhow::anyhow!("{e} (has `ftgo projection run order-history` run yet?)"))?
        }
        AnyStore::Memory(_) => {
            return Err(annals_cli::exit::invalid(
                "read models need a SQLite file or PostgreSQL",
            ));
        }
    };
    if json {
        // One line per order, then the totals (the JSON contract: `kind` on every line).
        for o in &answer.orders {
            annals_cli::output::emit_with("order", o);
        }
        annals_cli::output::emit(
            "orders",
            serde_json::json!({ "orders": answer.orders.len(), "open_total_cents": answer.open_total_cents }),
        );
        return Ok(());
    }
    for o in &answer.orders {
        out!(
            "{:<40} {:<14} {:<18} {:>8.2}  {} lines",
            o.order_id,
            o.consumer_id,
            order_history::state_name(o.state),
            o.total_cents as f64 / 100.0,
            o.line_items
        );
    }
    out!(
        "{} orders; open total {:.2}",
        answer.orders.len(),
        answer.open_total_cents as f64 / 100.0
    );
    Ok(())
}
