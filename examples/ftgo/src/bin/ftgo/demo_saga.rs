//! `ftgo demo saga`: FTGO's Create Order saga in one process on the embedded store. The four
//! services and the orchestrator run as subscriptions and talk only through events; every
//! command, reply and domain event is printed as it is committed.

use std::time::{Duration, Instant};

use annals::saga::{REPLY_STREAM_TYPE, SAGA_STREAM_TYPE};
use annals::{EventStore, Metadata, RecordedEvent, Repository, StreamId};
use ftgo::create_order::{saga_id, ticket_id};
use ftgo::in_process::{self, register_consumer};
use ftgo::kitchen::Ticket;
use ftgo::order::{LineItem, Order};
use ftgo::services::OrderService;

use annals_cli::backend::AnyStore;

fn euros(cents: i64) -> String {
    format!("{}.{:02} EUR", cents / 100, cents % 100)
}

/// One line for an event of the saga's conversation; `None` for bookkeeping events.
fn line(e: &RecordedEvent) -> Option<String> {
    let p = e.payload_value().unwrap_or_default();
    let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    Some(match (e.stream_type.as_str(), e.event_type.as_str()) {
        (SAGA_STREAM_TYPE, "SagaStarted") => format!("   saga {} started", e.stream_id),
        (SAGA_STREAM_TYPE, "CommandIssued") => format!(
            "   -> {:<10} {}{}",
            text("channel"),
            text("command_type"),
            if p["compensation"] == true {
                "  (compensation)"
            } else {
                ""
            }
        ),
        (SAGA_STREAM_TYPE, "CompensationStarted") => format!("   !! step failed: {}", text("reason")),
        (SAGA_STREAM_TYPE, "SagaCompleted") => format!(
            "   saga ended: {}",
            if p["compensated"] == true {
                "compensated"
            } else {
                "succeeded"
            }
        ),
        (SAGA_STREAM_TYPE, "SagaFailed") => format!("   saga FAILED: {}", text("reason")),
        (SAGA_STREAM_TYPE, _) => return None,
        (REPLY_STREAM_TYPE, _) => {
            let from = e.metadata.actor.as_deref().unwrap_or("?");
            let body = match &p["body"] {
                serde_json::Value::Null => String::new(),
                b => format!(" {b}"),
            };
            format!(
                "   <- {:<10} {} {}{body}",
                from.trim_start_matches("participant."),
                text("outcome"),
                text("reply_type")
            )
        }
        (stream_type, event_type) => format!("      [{stream_type}] {} {event_type}", e.stream_id),
    })
}

/// Prints what is committed after `from` until saga `saga`'s last event; returns the new position.
async fn follow(store: &AnyStore, mut from: u64, saga: &StreamId) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for e in store.read_all(from, 256).await? {
            from = e.global_position;
            if let Some(l) = line(&e) {
                say!("{l}");
            }
            if e.stream_id == *saga && matches!(e.event_type.as_str(), "SagaCompleted" | "SagaFailed") {
                return Ok(from);
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("saga {saga} has not ended after 20 s");
        }
        store.wait_for_new(from, Duration::from_millis(500)).await?;
    }
}

/// Runs the saga demo against `store` (opened from `global`'s `--db`).
pub(crate) async fn run(store: AnyStore, global: &annals_cli::Global) -> anyhow::Result<()> {
    let db = global.shown_db();
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tag = &run[run.len() - 6..];
    say!("ftgo demo saga: FTGO's Create Order saga, stored as events in {db}");
    say!("The order, consumer, kitchen and accounting services and the saga's orchestrator run in");
    say!("this process as subscriptions; they talk only through events (commands and replies).\n");
    let (alice, bob) = (format!("alice-{tag}"), format!("bob-{tag}"));
    register_consumer(&store, &alice, "Alice", 50_000, 50_000)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    register_consumer(&store, &bob, "Bob", 50_000, 2_000)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    say!(
        "{alice}: card limit {}; {bob}: card limit {}\n",
        euros(50_000),
        euros(2_000)
    );

    let services = in_process::spawn(&store);
    let orders = OrderService::new(store.clone());
    let cases = [
        ("the happy path", alice.clone(), 2),
        (
            "a consumer the Consumer Service does not know",
            format!("mallory-{tag}"),
            2,
        ),
        ("a card the Accounting Service declines", bob.clone(), 4),
    ];
    let mut pos = store.head_position().await?;
    for (n, (what, consumer, quantity)) in cases.iter().enumerate() {
        let order = StreamId::new(format!("order-{tag}-{}", n + 1))?;
        let lines = vec![LineItem::new("m-7", "Chicken Vindaloo", *quantity, 1_250)];
        let started = Instant::now();
        say!(
            "{}. {consumer} orders {}: {what}",
            n + 1,
            euros(ftgo::order::total_cents(&lines))
        );
        orders
            .create_order(&order, consumer, "ajanta", lines, &Metadata::by(consumer.as_str()))
            .await?;
        pos = follow(&store, pos, &saga_id(order.as_str())?).await?;
        let order_state = Repository::<Order, _>::new(store.clone()).load(&order).await?.state;
        let ticket = Repository::<Ticket, _>::new(store.clone())
            .load(&ticket_id(order.as_str())?)
            .await?;
        let ticket = if ticket.version == 0 {
            "no ticket".to_owned()
        } else {
            format!("ticket {:?}", ticket.state.state)
        };
        say!(
            "   => order {order} {:?}, {ticket} ({} ms)\n",
            order_state.state,
            started.elapsed().as_millis()
        );
        if global.json {
            annals_cli::output::emit(
                "saga_demo_case",
                serde_json::json!({ "case": what, "order": order.as_str(), "saga": saga_id(order.as_str())?.as_str(),
                                    "order_state": format!("{:?}", order_state.state), "ticket": ticket,
                                    "milliseconds": started.elapsed().as_millis() }),
            );
        }
    }
    services.stop().await.map_err(|e| anyhow::anyhow!(e))?;

    // Personal data: a consumer's name is stored encrypted under their own key; forgetting them
    // destroys the key, and every read shows `[forgotten]` while the rest of their record loads.
    let consumers = ftgo::services::ConsumerService::new(store.clone());
    let bob_id = StreamId::new(bob.as_str())?;
    let before = consumers.consumers().load(&bob_id).await?.state;
    annals::privacy::forget(&store, &store, &bob, &Metadata::by("ftgo-demo")).await?;
    // A new service instance: the forgotten key is in no cache.
    let after = ftgo::services::ConsumerService::new(store.clone())
        .consumers()
        .load(&bob_id)
        .await?
        .state;
    say!(
        "4. {bob} asks to be forgotten: their name read {:?}, now {:?}; their order limit still reads {}",
        before.name,
        after.name,
        euros(after.order_limit_cents)
    );
    if global.json {
        annals_cli::output::emit(
            "consumer_forgotten",
            serde_json::json!({ "consumer": bob, "name_before": before.name, "name_after": after.name }),
        );
    }
    say!();
    if let Some(store) = global.store_args() {
        say!("Every saga is an event-sourced aggregate: see one with");
        say!("  ftgo {store} saga show {}", saga_id(&format!("order-{tag}-3"))?);
    }
    Ok(())
}
