//! annals' command-path workload (`benches/src/command.rs`) run by evento on SQLite (WAL,
//! `synchronous=FULL` as annals and the raw baseline run), for the side-by-side table. N ∈ {1,
//! 16} appenders × K ∈ {1, 10} events per command, 10 commands per aggregate; then the load of a
//! 1 000-event aggregate. evento is used as its README shows: a command loads the write model
//! (a projection, here with `snapshot(none)`: no snapshot, like the other systems' loads) and
//! commits through its `write()` gateway with the loaded version. Its payloads are bitcode, not
//! JSON: that is evento's format, and part of what is compared.
//!
//! Run by `benches/peers/run`, or alone: `cargo run --release` here (`ANNALS_BENCH_SECS`,
//! `ANNALS_BENCH_JSON`).

use std::sync::Arc;

use annals_bench_harness::{Sample, header, record, row, run_commands, secs, timed_loads};
use evento::metadata::Event;
use evento::migrator::{Migrate, Plan};
use evento::{Executor, Projection, ProjectionAggregate};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The line item, with bitcode's derives (evento's payload format).
#[derive(Clone, Debug, Default, PartialEq, bitcode::Encode, bitcode::Decode)]
pub struct Line {
    pub menu_item_id: String,
    pub name: String,
    pub quantity: u32,
    pub price_cents: i64,
}

#[evento::aggregate(name = "bench/Order")]
pub enum Order {
    OrderRevised { line_items: Vec<Line>, total_cents: i64 },
}

/// The write model: the same state the other systems fold.
#[evento::projection(id = id)]
#[evento::snapshot(none)]
pub struct OrderView {
    pub id: String,
    pub revisions: u64,
    pub lines: usize,
    pub total_cents: i64,
}

#[evento::handler]
async fn on_revised(event: Event<OrderRevised>, view: &mut OrderView) -> anyhow::Result<()> {
    view.id = event.aggregate_id.to_owned();
    view.revisions += 1;
    view.lines = event.data.line_items.len();
    view.total_cents = event.data.total_cents;
    Ok(())
}

fn order_view<E: Executor>() -> Projection<E, OrderView> {
    Projection::new::<Order>().handler(on_revised())
}

fn revised(n: usize) -> OrderRevised {
    let l = annals_bench_harness::Line::vindaloo();
    OrderRevised {
        line_items: vec![Line {
            menu_item_id: l.menu_item_id,
            name: l.name,
            quantity: l.quantity,
            price_cents: l.price_cents,
        }],
        total_cents: 2500 + n as i64,
    }
}

/// One command: load the write model, decide `k` events, commit at the loaded version.
async fn command<E: Executor>(executor: &E, id: &str, k: usize) -> anyhow::Result<()> {
    let mut write = match order_view().load(id).execute(executor).await? {
        Some(view) => view.write()?,
        None => evento::append(id),
    };
    for n in 0..k {
        write.event(&revised(n));
    }
    write.commit(executor).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    println!(
        "evento 2.0.0-alpha.38 on annals' command-path workload — {:?} per case",
        secs()
    );
    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    if !(only.is_empty() || only == "sqlite") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("evento.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await?;
    let mut conn = pool.acquire().await?;
    evento::sql_migrator::new::<sqlx::Sqlite>()?
        .run(&mut *conn, &Plan::apply_all())
        .await?;
    drop(conn);
    let executor: Arc<evento::Sqlite> = Arc::new(pool.clone().into());

    println!("\n## SQLite peer: evento (synchronous=FULL, WAL, pool of 16)");
    header(
        "Commands: load → decide → append, 10 per aggregate (events/s)",
        "events/s",
    );
    let loads_only = std::env::var("ANNALS_BENCH_LOADS_ONLY").is_ok_and(|v| v == "1");
    let cases = if loads_only {
        vec![]
    } else {
        vec![(1, 1), (1, 10), (16, 1), (16, 10)]
    };
    for (appenders, k) in cases {
        let mut s = Sample::empty();
        for r in 0..2 {
            let tag = Arc::<str>::from(format!("{appenders}x{k}-{r}"));
            let executor = executor.clone();
            s.add(
                run_commands(appenders, k, secs() / 2, move |w, aggregate| {
                    let (executor, tag) = (executor.clone(), tag.clone());
                    async move {
                        command(&*executor, &format!("evento-{tag}-{w}-{aggregate}"), k)
                            .await
                            .expect("an evento command");
                    }
                })
                .await,
            );
        }
        let workload = format!("commands {appenders}×{k}");
        row(&format!("evento, {workload}"), &s, None);
        record("sqlite", &workload, "evento", "events/s", &s);
    }

    header("Load of a 1 000-event aggregate, no snapshot (loads/s)", "loads/s");
    for _ in 0..10 {
        command(&*executor, "big-1", 100).await?;
    }
    let mut s = Sample::empty();
    for _ in 0..2 {
        s.add(
            timed_loads(secs() / 2, || async {
                let view = order_view().load("big-1").execute(&*executor).await.unwrap().unwrap();
                assert_eq!(view.revisions, 1000);
            })
            .await,
        );
    }
    row("evento load, 1 000 events", &s, None);
    record("sqlite", "load of 1 000 events", "evento", "loads/s", &s);
    pool.close().await;
    Ok(())
}
