//! Live wake-ups: one connection per store LISTENs on the schema's log channel, where the
//! sequencer announces each new head (`pg_notify` at its commit), and moves the store's head
//! forward; waiting readers watch that head. If the listening connection drops, it reconnects
//! with backoff; waiting readers meanwhile still see new events through their periodic sweep.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_postgres::{AsyncMessage, Config, NoTls};

use crate::advance_head;

/// Starts the listener; `ready` fires once the first LISTEN is in place (or the first attempt
/// failed, so waiters do not hang on it).
pub(crate) fn spawn(
    config: Config,
    schema: String,
    head: watch::Sender<u64>,
    ready: oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen_once(&config, &schema, &head, &mut ready).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::warn!(error = %e, "annals-postgres: log listener lost its connection; reconnecting"),
            }
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

async fn listen_once(
    config: &Config,
    schema: &str,
    head: &watch::Sender<u64>,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let head_for_driver = head.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Ok(at) = n.payload().parse::<u64>() {
                        advance_head(&head_for_driver, at);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN \"annals_log.{schema}\"")).await?;
    // Anything sequenced before LISTEN took effect: read the head once.
    let at: i64 = client.query_one("SELECT last FROM log_tip()", &[]).await?.get(0);
    advance_head(head, at as u64);
    if let Some(r) = ready.take() {
        let _ = r.send(());
    }
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
