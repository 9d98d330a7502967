//! `ftgo serve|add-consumer|open-account|place-order`: FTGO as separate service processes over PostgreSQL (or SQLite) and NATS
//! JetStream. Each service has its own store (`--db`/`--pg-schema`); `serve` runs
//! [`ftgo::over_nats::serve`] until Ctrl-C or SIGTERM: its relay and its durable consumers.

use std::time::Duration;

use annals::{Metadata, StreamId};
use annals_nats::NatsOptions;
use ftgo::order::LineItem;
use ftgo::over_nats::{self, Service};
use ftgo::services::{AccountingService, ConsumerService, OrderService};

use annals_cli::backend::AnyStore;
use annals_cli::output::out;

/// `ftgo serve|add-consumer|open-account|place-order`.
#[derive(clap::Subcommand)]
pub(crate) enum FtgoAction {
    /// Run one service until Ctrl-C or SIGTERM: its relay to NATS and its consumers.
    Serve {
        /// Which service: order, consumer, kitchen or accounting (its store is --db / --pg-schema).
        service: Service,
        /// The NATS server.
        #[arg(long, env = "ANNALS_NATS", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        /// The JetStream stream shared by the services (created if missing).
        #[arg(long, default_value = "ANNALS")]
        stream: String,
        /// The subject prefix shared by the services.
        #[arg(long, default_value = "annals")]
        prefix: String,
        /// The relay's lease: how soon a restarted service's relay takes over from a dead one.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        lease: Duration,
    },
    /// Register a consumer with the Consumer Service (run on its store).
    AddConsumer {
        /// The consumer id.
        id: String,
        /// Their name (personal data: stored encrypted, forgotten with `forget ID`).
        #[arg(long, default_value = "a consumer")]
        name: String,
        /// Their delivery address (personal data, as the name).
        #[arg(long, default_value = "")]
        address: String,
        /// The largest order total they may place, in cents.
        #[arg(long, default_value_t = 50_000)]
        order_limit: i64,
    },
    /// Open a consumer's account with the Accounting Service (run on its store).
    OpenAccount {
        /// The consumer id.
        id: String,
        /// The card's limit per charge, in cents.
        #[arg(long, default_value_t = 50_000)]
        card_limit: i64,
    },
    /// Place orders with the Order Service (run on its store): each starts a Create Order saga.
    PlaceOrder {
        /// The order id (with --count, the prefix of `<id>-1` … `<id>-N`).
        id: String,
        /// Who orders.
        #[arg(long)]
        consumer: String,
        /// How many of the dish (12.50 EUR each).
        #[arg(long, default_value_t = 2)]
        quantity: u32,
        /// Place this many orders.
        #[arg(long)]
        count: Option<u32>,
    },
}

/// Says what a command did: a line of text, or with `--json` one object of `kind`.
fn report(kind: &str, value: serde_json::Value) {
    if crate::JSON.load(std::sync::atomic::Ordering::Relaxed) {
        annals_cli::output::emit(kind, value);
    } else {
        let fields: Vec<String> = value
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        out!("{}: {}", kind.replace('_', " "), fields.join(", "));
    }
}

/// `ftgo serve|add-consumer|open-account|place-order` on the service store `store`.
pub(crate) async fn run(store: AnyStore, action: FtgoAction) -> anyhow::Result<()> {
    let meta = Metadata::by("ftgo-cli");
    match action {
        FtgoAction::Serve {
            service,
            nats,
            stream,
            prefix,
            lease,
        } => serve(store, service, NatsOptions::new(nats).with_names(stream, prefix), lease).await,
        FtgoAction::AddConsumer {
            id,
            name,
            address,
            order_limit,
        } => {
            let command = ftgo::consumer::ConsumerCommand::Register {
                consumer_id: id.clone(),
                name,
                address,
                order_limit_cents: order_limit,
            };
            let done = ConsumerService::new(store)
                .consumers()
                .execute(&StreamId::new(id.as_str())?, &command, &meta)
                .await?;
            report(
                "consumer_added",
                serde_json::json!({ "consumer": id, "version": done.version }),
            );
            Ok(())
        }
        FtgoAction::OpenAccount { id, card_limit } => {
            let command = ftgo::accounting::AccountCommand::Open {
                card_limit_cents: card_limit,
            };
            let done = AccountingService::new(store)
                .accounts()
                .execute(&ftgo::create_order::account_id(&id)?, &command, &meta)
                .await?;
            report(
                "account_opened",
                serde_json::json!({ "consumer": id, "version": done.version }),
            );
            Ok(())
        }
        FtgoAction::PlaceOrder {
            id,
            consumer,
            quantity,
            count,
        } => {
            let orders = OrderService::new(store);
            let ids: Vec<String> = match count {
                None => vec![id],
                Some(n) => (1..=n).map(|i| format!("{id}-{i}")).collect(),
            };
            for id in ids {
                let lines = vec![LineItem::new("m-7", "Chicken Vindaloo", quantity, 1_250)];
                orders
                    .create_order(&StreamId::new(id.as_str())?, &consumer, "ajanta", lines, &meta)
                    .await?;
                let saga = ftgo::create_order::saga_id(&id)?;
                if crate::JSON.load(std::sync::atomic::Ordering::Relaxed) {
                    annals_cli::output::emit(
                        "order_placed",
                        serde_json::json!({ "order": id, "saga": saga.as_str() }),
                    );
                } else {
                    out!("{id} placed: saga {saga}");
                }
            }
            Ok(())
        }
    }
}

async fn serve(store: AnyStore, service: Service, options: NatsOptions, lease: Duration) -> anyhow::Result<()> {
    let name = service.name();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    eprintln!(
        "ftgo {name} service: relay and consumers on {} (stream {}, subjects {}.>)",
        options.url, options.stream, options.subject_prefix
    );
    let signal = tokio::spawn(async move {
        annals_cli::logging::shutdown().await;
        let _ = stop_tx.send(true);
    });
    let outcome = over_nats::serve(store, service, options, lease, stop).await;
    signal.abort();
    eprintln!("ftgo {name} service: stopped");
    outcome.map_err(|e| anyhow::anyhow!("ftgo {name} service: {e}"))
}
