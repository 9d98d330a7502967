//! Schema upgrades: a schema left at any earlier migration, with events in it, is brought to the
//! current one on connect and keeps working — its events keep their positions and new ones follow.

mod common;

use annals::{EventStore, ExpectedVersion, NewEvent, StreamId};
use annals_postgres::schema::{MIGRATIONS, migrate_until};
use annals_postgres::{PostgresOptions, PostgresStore};

fn ev(n: i64) -> NewEvent {
    NewEvent::from_value("Counted", &serde_json::json!({ "n": n }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_at_any_earlier_migration_upgrades_on_connect() {
    let newest = MIGRATIONS.last().unwrap().version;
    for last in 1..newest {
        let schema = common::unique_schema("up");
        let _guard = common::SchemaGuard { schema: schema.clone() };
        let mut client = common::raw_client(&schema).await;
        migrate_until(&mut client, &schema, last).await.unwrap();
        if last < 11 {
            // The log as migrations before 11 made it.
            client.batch_execute("ALTER TABLE log DROP COLUMN seen").await.unwrap();
        }
        // Events written at that version, through the function every version has, and sequenced.
        for _ in 0..2 {
            common::raw_append(&client, &format!("old-{last}"), -1).await;
        }
        if last < 11 {
            // A pre-11 sequencer run (log_head.fence and position), as those versions did it.
            client
                .batch_execute(
                    "INSERT INTO log (first_position, stream_id, first_version, count)
                     SELECT row_number() OVER (ORDER BY version), stream_id, version, 1 FROM events;
                     UPDATE log_head SET position = 2, fence = pg_snapshot_xmin(pg_current_snapshot())",
                )
                .await
                .unwrap();
        } else {
            client.query_one("SELECT assign_positions()", &[]).await.unwrap();
        }

        let store = PostgresStore::connect_with(
            &common::url(),
            PostgresOptions {
                schema: schema.clone(),
                ..PostgresOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("upgrading from migration {last}: {e}"));
        let applied: i32 = client
            .query_one("SELECT max(version) FROM migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(applied, newest, "from migration {last}");
        let stream = StreamId::new(format!("old-{last}")).unwrap();
        store
            .append_to_stream(stream.clone(), "Raced", ExpectedVersion::Exact(2), vec![ev(3)])
            .await
            .unwrap_or_else(|e| panic!("appending after an upgrade from migration {last}: {e}"));
        assert_eq!(store.head_position().await.unwrap(), 3, "from migration {last}");
        let all = store.read_all(0, 10).await.unwrap();
        let seen: Vec<(u64, u64)> = all.iter().map(|e| (e.global_position, e.version)).collect();
        assert_eq!(seen, [(1, 1), (2, 2), (3, 3)], "from migration {last}");
    }
}
