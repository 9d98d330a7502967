//! Test support: the crate's `testing` helpers, plus raw SQL access for the race fixtures.

#![allow(dead_code)]

pub(crate) use annals_postgres::testing::*;

/// A plain connection to the test database with `search_path` set to `schema`.
pub(crate) async fn raw_client(schema: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url().parse().unwrap();
    config.options(format!("-c search_path={schema}"));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Appends one event through the store's SQL function inside whatever transaction `client` has
/// open, without asking for positions (as an appender that stops right after its commit would).
pub(crate) async fn raw_append(client: &impl tokio_postgres::GenericClient, stream: &str, expected: i64) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    client
        .query(
            "SELECT * FROM append_events(ARRAY[$1::text], ARRAY['Raced'], ARRAY[$2::bigint], ARRAY[1], ARRAY[1],
                 ARRAY[NULL::bigint], ARRAY[NULL::int], ARRAY[NULL::text], ARRAY[$3::uuid], ARRAY['Raced'],
                 ARRAY[1], ARRAY['{}'], ARRAY['{}'])",
            &[&stream, &expected, &id],
        )
        .await
        .unwrap();
    id
}
