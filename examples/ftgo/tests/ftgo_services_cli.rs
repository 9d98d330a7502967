//! FTGO as four service processes (`ftgo serve`), each with its own PostgreSQL schema,
//! relaying its events to NATS JetStream and consuming commands or replies from it:
//! - the three Create Order scenarios, driven with the CLI as the README shows;
//! - the crash test: the order service (the saga's orchestrator) is killed with SIGKILL twice
//!   while hundreds of sagas run, then restarted; every saga completes or compensates, none is
//!   stuck, and no command is applied twice.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use annals::saga::{SagaInstance, SagaStatus, reply_stream};
use annals::{EventStore, Metadata, ReadStream, Repository, StreamId};
use annals_postgres::testing::{SchemaGuard, unique_schema, url};
use annals_postgres::{PostgresOptions, PostgresStore};
use ftgo::accounting::Account;
use ftgo::create_order::{CreateOrderSaga, account_id, saga_id, ticket_id};
use ftgo::order::{LineItem, Order, OrderState};
use ftgo::services::OrderService;

const NATS: &str = "nats://127.0.0.1:4222";
const SERVICES: [&str; 4] = ["order", "consumer", "kitchen", "accounting"];

/// Four schemas, a NATS stream of the test's own, and the service processes.
struct System {
    tag: String,
    schemas: HashMap<&'static str, String>,
    stores: HashMap<&'static str, PostgresStore>,
    children: HashMap<&'static str, Child>,
    logs: tempfile::TempDir,
    _guards: Vec<SchemaGuard>,
}

impl System {
    async fn new(prefix: &str) -> Self {
        let tag = unique_schema(prefix);
        let mut schemas = HashMap::new();
        let mut stores = HashMap::new();
        let mut guards = Vec::new();
        for s in SERVICES {
            let schema = format!("{tag}_{s}");
            let options = PostgresOptions {
                schema: schema.clone(),
                ..PostgresOptions::default()
            };
            stores.insert(s, PostgresStore::connect_with(&url(), options).await.unwrap());
            guards.push(SchemaGuard { schema: schema.clone() });
            schemas.insert(s, schema);
        }
        Self {
            tag,
            schemas,
            stores,
            children: HashMap::new(),
            logs: tempfile::tempdir().unwrap(),
            _guards: guards,
        }
    }

    fn annals(&self, service: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ftgo"));
        c.args(["--db", &url(), "--pg-schema", &self.schemas[service]]);
        c
    }

    fn cli(&self, service: &str, args: &[&str]) -> String {
        let out = self.annals(service).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn serve(&mut self, service: &'static str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.path().join(format!("{service}.log")))
            .unwrap();
        let child = self
            .annals(service)
            .args(["serve", service, "--nats", NATS, "--lease", "1s"])
            .args([
                "--stream",
                &format!("S{}", self.tag),
                "--prefix",
                &format!("p{}", self.tag),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.insert(service, child);
    }

    fn kill(&mut self, service: &str) {
        let mut child = self.children.remove(service).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn logs(&self) -> String {
        SERVICES
            .iter()
            .map(|s| {
                let text = std::fs::read_to_string(self.logs.path().join(format!("{s}.log"))).unwrap_or_default();
                format!("--- {s}\n{text}")
            })
            .collect()
    }

    fn store(&self, service: &str) -> &PostgresStore {
        &self.stores[service]
    }

    /// Waits until every saga in `ids` has ended; the sagas still running on timeout.
    async fn wait_all(&self, ids: &[StreamId], secs: u64) -> Result<Vec<SagaInstance<CreateOrderSaga>>, String> {
        let repo = Repository::<SagaInstance<CreateOrderSaga>, _>::new(self.store("order").clone());
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut ended = Vec::new();
            let mut open = Vec::new();
            for id in ids {
                let saga = repo.load(id).await.unwrap().state;
                if saga.status.is_final() {
                    ended.push(saga);
                } else {
                    open.push(format!("{id}: {:?} {:?}", saga.status, saga.pending));
                }
            }
            if open.is_empty() {
                return Ok(ended);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} sagas stuck, e.g. {:?}\n{}",
                    open.len(),
                    &open[..open.len().min(5)],
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sagas ended so far: `SagaCompleted`/`SagaFailed` events in the order service's log after
    /// `seen.0`, added to `seen.1`.
    async fn ended(&self, seen: &mut (u64, usize)) -> usize {
        loop {
            let page = self.store("order").read_all(seen.0, 1000).await.unwrap();
            let Some(last) = page.last() else { return seen.1 };
            seen.0 = last.global_position;
            seen.1 += page
                .iter()
                .filter(|e| matches!(e.event_type.as_str(), "SagaCompleted" | "SagaFailed"))
                .count();
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for (_, mut child) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stream = format!("S{}", self.tag);
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                if let Ok(client) = async_nats::connect(NATS).await {
                    let _ = async_nats::jetstream::new(client).delete_stream(&stream).await;
                }
            })
        })
        .join();
    }
}

fn saga_list(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["saga"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_service_processes_run_the_create_order_saga_over_postgres_and_nats() {
    let mut sys = System::new("ftgo").await;
    for s in SERVICES {
        sys.serve(s);
    }
    sys.cli("consumer", &["add-consumer", "alice"]);
    sys.cli("accounting", &["open-account", "alice", "--card-limit", "2000"]);
    sys.cli(
        "order",
        &["place-order", "o-happy", "--consumer", "alice", "--quantity", "1"],
    );
    sys.cli(
        "order",
        &["place-order", "o-declined", "--consumer", "alice", "--quantity", "4"],
    );
    sys.cli("order", &["place-order", "o-unknown", "--consumer", "mallory"]);
    let ids: Vec<StreamId> = ["o-happy", "o-declined", "o-unknown"]
        .iter()
        .map(|o| saga_id(o).unwrap())
        .collect();
    sys.wait_all(&ids, 60).await.unwrap();

    let sagas = saga_list(&sys.cli("order", &["saga", "list", "--json"]));
    assert_eq!(sagas["create-order~o-happy"], "Succeeded");
    assert_eq!(sagas["create-order~o-declined"], "Compensated");
    assert_eq!(sagas["create-order~o-unknown"], "Compensated");
    let orders = Repository::<Order, _>::new(sys.store("order").clone());
    let state = |o: &'static str| {
        let orders = &orders;
        async move { orders.load(&StreamId::new(o).unwrap()).await.unwrap().state.state }
    };
    assert_eq!(state("o-happy").await, OrderState::Approved);
    assert_eq!(state("o-declined").await, OrderState::Rejected);
    assert_eq!(state("o-unknown").await, OrderState::Rejected);
    // The kitchen's own store: the declined order's ticket was created, then cancelled.
    let tickets = Repository::<ftgo::kitchen::Ticket, _>::new(sys.store("kitchen").clone());
    let ticket = |o: &'static str| {
        let tickets = &tickets;
        async move { tickets.load(&ticket_id(o).unwrap()).await.unwrap().state.state }
    };
    assert_eq!(ticket("o-happy").await, ftgo::kitchen::TicketState::AwaitingAcceptance);
    assert_eq!(ticket("o-declined").await, ftgo::kitchen::TicketState::Cancelled);
    assert_eq!(ticket("o-unknown").await, ftgo::kitchen::TicketState::New);
    let show = sys.cli("order", &["saga", "show", "create-order~o-declined"]);
    assert!(
        show.contains("undo 3 create ticket: CancelCreateTicket -> kitchen"),
        "{show}"
    );
}

/// Orders of the crash test: every tenth by an unknown consumer, every tenth by one whose card
/// is declined, the rest by consumers who get their order.
fn consumer_of(i: usize) -> (String, bool) {
    match i % 10 {
        0 => (format!("ghost-{}", i % 7), false),
        1 => (format!("poor-{}", i % 3), false),
        _ => (format!("rich-{}", i % 20), true),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_orchestrator_mid_saga_leaves_no_saga_stuck_and_no_command_applied_twice() {
    const SAGAS: usize = 400;
    let mut sys = System::new("sagakill").await;
    let meta = Metadata::by("test");
    for i in 0..20 {
        let id = format!("rich-{i}");
        sys.cli("consumer", &["add-consumer", &id]);
        sys.cli("accounting", &["open-account", &id]);
    }
    for i in 0..3 {
        let id = format!("poor-{i}");
        sys.cli("consumer", &["add-consumer", &id]);
        sys.cli("accounting", &["open-account", &id, "--card-limit", "100"]);
    }
    for s in SERVICES {
        sys.serve(s);
    }
    // Place every order up front (four at a time), so hundreds of sagas are in flight.
    let orders = OrderService::new(sys.store("order").clone());
    let mut ids = Vec::new();
    let mut placing = tokio::task::JoinSet::new();
    for chunk in (0..SAGAS).collect::<Vec<_>>().chunks(SAGAS / 4) {
        let (orders, chunk, meta) = (
            OrderService::new(sys.store("order").clone()),
            chunk.to_vec(),
            meta.clone(),
        );
        placing.spawn(async move {
            for i in chunk {
                let (consumer, _) = consumer_of(i);
                let lines = vec![LineItem::new("m-7", "Chicken Vindaloo", 2, 1_250)];
                let order = StreamId::new(format!("order-{i}")).unwrap();
                orders
                    .create_order(&order, &consumer, "ajanta", lines, &meta)
                    .await
                    .unwrap();
            }
        });
    }
    for i in 0..SAGAS {
        ids.push(saga_id(&format!("order-{i}")).unwrap());
    }
    drop(orders);

    // Kill the orchestrator's process twice while sagas run, restarting it each time.
    let mut seen = (0, 0);
    for at in [SAGAS / 10, SAGAS / 3] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while sys.ended(&mut seen).await < at {
            assert!(Instant::now() < deadline, "no progress to {at} sagas\n{}", sys.logs());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sys.kill("order");
        let ended = sys.ended(&mut seen).await;
        eprintln!("killed the order service with {ended} of {SAGAS} sagas ended");
        assert!(ended + 50 <= SAGAS, "the kill landed with at least 50 sagas running");
        tokio::time::sleep(Duration::from_millis(300)).await;
        sys.serve("order");
    }
    while placing.join_next().await.is_some() {}
    let sagas = sys.wait_all(&ids, 120).await.unwrap();

    // Every saga ended the way its order should.
    for (i, saga) in sagas.iter().enumerate() {
        let (_, approves) = consumer_of(i);
        let want = if approves {
            SagaStatus::Succeeded
        } else {
            SagaStatus::Compensated
        };
        assert_eq!(saga.status, want, "saga {}: {saga:?}", ids[i]);
    }
    // No command applied twice: exactly one reply per command, across the participants' stores;
    // each order approved or rejected once; each ticket created once; each card charged once.
    let order_repo = Repository::<Order, _>::new(sys.store("order").clone());
    let account_repo = Repository::<Account, _>::new(sys.store("accounting").clone());
    for (i, id) in ids.iter().enumerate() {
        let commands: Vec<uuid::Uuid> = sys
            .store("order")
            .read_stream(id, ReadStream::all())
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event_type == "CommandIssued")
            .map(|e| e.event_id)
            .collect();
        let mut replies = Vec::new();
        for s in SERVICES {
            for r in sys
                .store(s)
                .read_stream(&reply_stream(id.as_str()).unwrap(), ReadStream::all())
                .await
                .unwrap()
            {
                replies.push(uuid::Uuid::parse_str(r.payload_value().unwrap()["reply_to"].as_str().unwrap()).unwrap());
            }
        }
        replies.sort();
        let mut sent = commands.clone();
        sent.sort();
        assert_eq!(replies, sent, "saga {id}: one reply per command");
        let order = order_repo
            .load(&StreamId::new(format!("order-{i}")).unwrap())
            .await
            .unwrap();
        assert_eq!(order.version, 2, "order-{i} created, then approved or rejected once");
        let ticket = sys
            .store("kitchen")
            .read_stream(&ticket_id(&format!("order-{i}")).unwrap(), ReadStream::all())
            .await
            .unwrap();
        let created = ticket.iter().filter(|e| e.event_type == "TicketCreated").count();
        assert!(created <= 1, "order-{i}: ticket created {created} times");
    }
    let mut charged = HashSet::new();
    for c in (0..20).map(|i| format!("rich-{i}")) {
        let account = account_repo.load(&account_id(&c).unwrap()).await.unwrap().state;
        for (order, _) in account.authorized {
            assert!(charged.insert(order.clone()), "{order} charged twice");
        }
    }
    assert_eq!(charged.len(), (0..SAGAS).filter(|i| consumer_of(*i).1).count());
}
