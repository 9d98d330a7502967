//! `ftgo demo`: an FTGO order's life on the embedded store, printed step by step.

use annals::{EventStore, ExpectedVersion, Metadata, NewEvent, Repository, RepositoryError, SnapshotPolicy, StreamId};
use ftgo::order::{LineItem, Order, OrderCommand, OrderEvent};

use annals_cli::backend::AnyStore;
use annals_cli::output::event_line;

fn euros(cents: i64) -> String {
    format!("{}.{:02} EUR", cents / 100, cents % 100)
}

/// Runs the demo against `store` (opened from `global`'s `--db`).
pub(crate) async fn run(store: AnyStore, global: &annals_cli::Global) -> anyhow::Result<()> {
    let db = global.shown_db();
    let repo = Repository::<Order, _>::new(store.clone()).with_snapshots(SnapshotPolicy::EveryNEvents(4));
    let short = uuid::Uuid::now_v7().simple().to_string();
    let id = StreamId::new(format!("order-{}", &short[short.len() - 8..]))?;
    let head_before = store.head_position().await?;
    say!("ftgo demo: the life of one FTGO order, stored as events in {db}\n");

    let consumer = Metadata::by("consumer-42");
    let lines = vec![
        LineItem::new("m-7", "Chicken Vindaloo", 2, 1_250),
        LineItem::new("m-2", "Garlic Naan", 2, 350),
    ];
    let created = repo
        .execute(
            &id,
            &OrderCommand::Create {
                consumer_id: "consumer-42".into(),
                restaurant_id: "ajanta".into(),
                line_items: lines,
            },
            &consumer,
        )
        .await?;
    say!(
        "1. consumer-42 creates {id}: {} -> {:?} (version {})",
        euros(created.state.total_cents),
        created.state.state,
        created.version
    );

    let saga = Metadata::by("create-order-saga");
    let approved = repo.execute(&id, &OrderCommand::Approve, &saga).await?;
    say!(
        "2. the Create Order saga approves it -> {:?} (version {})",
        approved.state.state,
        approved.version
    );

    let more = vec![
        LineItem::new("m-7", "Chicken Vindaloo", 3, 1_250),
        LineItem::new("m-2", "Garlic Naan", 3, 350),
    ];
    let revised = repo
        .execute(&id, &OrderCommand::Revise { line_items: more }, &consumer)
        .await?;
    say!(
        "3. consumer-42 revises it to {} (version {})",
        euros(revised.state.total_cents),
        revised.version
    );

    // Two clerks loaded version 3; the first one's change lands, the second one's append is refused.
    let stale = revised.version;
    let clerk = Metadata::by("support-clerk-1");
    repo.execute(
        &id,
        &OrderCommand::Revise {
            line_items: vec![LineItem::new("m-7", "Chicken Vindaloo", 4, 1_250)],
        },
        &clerk,
    )
    .await?;
    let (event_type, schema_version, payload) = annals::encode(&OrderEvent::OrderRevised {
        line_items: vec![LineItem::new("m-2", "Garlic Naan", 9, 350)],
        total_cents: 3_150,
    })?;
    let late = NewEvent::new(event_type, payload)
        .with_schema_version(schema_version)
        .with_metadata(Metadata::by("support-clerk-2"));
    match store
        .append_to_stream(id.clone(), "Order", ExpectedVersion::Exact(stale), vec![late])
        .await
    {
        Err(e) if e.is_conflict() => {
            say!("4. two clerks edit at once: support-clerk-1 wins; support-clerk-2 is refused:\n   {e}")
        }
        other => anyhow::bail!("the demo expected a conflict, got {other:?}"),
    }

    let cancelled = repo
        .execute(
            &id,
            &OrderCommand::Cancel {
                reason: "the consumer changed their mind".into(),
            },
            &consumer,
        )
        .await?;
    say!(
        "5. consumer-42 cancels it -> {:?} (version {})",
        cancelled.state.state,
        cancelled.version
    );

    match repo.execute(&id, &OrderCommand::Approve, &saga).await {
        Err(RepositoryError::Rejected(e)) => {
            say!("6. approving it again is a rejected command: {e}")
        }
        other => anyhow::bail!("the demo expected a rejected command, got {other:?}"),
    }

    let at_approval = repo.load_at_version(&id, approved.version).await?;
    say!(
        "7. time travel: at version {} the order was {:?} for {}",
        at_approval.version,
        at_approval.state.state,
        euros(at_approval.state.total_cents)
    );

    say!("\nthe events this demo appended to the global log:");
    let appended = store.read_all(head_before, 100).await?;
    for e in &appended {
        say!("  {}", event_line(e));
    }
    if global.json {
        annals_cli::output::print_events(&appended, true);
        annals_cli::output::emit(
            "demo",
            serde_json::json!({ "store": db, "order": id.as_str(), "events": appended.len() }),
        );
    }
    match global.store_args() {
        Some(store) => {
            say!("\nnext: ftgo {store} history {id} --at-version 2");
            say!("      ftgo {store} events --follow");
        }
        None => say!("\n(the store lived in memory: run the demo on a file or PostgreSQL to look around after it)"),
    }
    Ok(())
}
