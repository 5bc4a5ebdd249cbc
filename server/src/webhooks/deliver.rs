//! The webhook sender: POSTs pending events to each receiver, one at a time per room and
//! receiver (so a room's events arrive in order) and many rooms at once, retrying network
//! errors, 5xx and 429 with exponential backoff. Pending events are kept in memory, lane by lane,
//! and, with records on, in the store too, so a restart delivers them: the store is written in
//! batches (what was delivered, what is to be retried when) and read only at start.
//!
//! Nothing here is on a room's path: a slow or dead receiver holds up only its own lane.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::queue::{Outcome, Pending, Queue, MAX_ATTEMPTS};
use super::{signature, WebhookConfig};
use crate::store::{ms, unix_ms, Store, StoreError, Write};

/// A receiver gets this long to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept in memory with records off, before new ones are dropped and counted. With records
/// on, events past this stay in the store and are read back once the lanes have drained.
const MEMORY_LIMIT: usize = 10_000;
const STORED_MEMORY_LIMIT: usize = 200_000;
/// Requests open at once to one receiver. Rooms take turns beyond this: a clinic's receiver
/// is not met with a connection per live room, and a burst of joins costs a few connections.
pub const MAX_IN_FLIGHT: usize = 32;
/// Outcomes are written to the store in batches of at most this many, and at least this often
/// while any wait: at most this much delivered work is sent again after a crash.
const FLUSH_BATCH: usize = 512;
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// A pending event as the store keeps it.
impl From<Pending> for Write {
    fn from(p: Pending) -> Write {
        Write::Webhook {
            id: p.id,
            url: p.url,
            room: p.room,
            seq: p.seq,
            body: p.body,
            at: p.next_attempt_at,
        }
    }
}

/// Counts of what happened to deliveries, for metrics.
pub type OnResult = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The handle the recorder (or, with records off, the event listener) uses to hand events
/// over and wake the sender.
#[derive(Clone)]
pub struct Webhooks {
    config: Arc<WebhookConfig>,
    store: Option<Store>,
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    backoff: Duration,
    on_result: OnResult,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("receivers", &self.config.urls.len())
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// `store`: where pending events are kept (none with records off). `backoff`: the first
    /// retry's pause, doubled for each one after.
    pub fn new(
        config: WebhookConfig,
        store: Option<Store>,
        backoff: Duration,
        on_result: OnResult,
    ) -> Webhooks {
        Webhooks {
            config: Arc::new(config),
            store,
            queue: Arc::new(Mutex::new(Queue::default())),
            wake: Arc::new(Notify::new()),
            backoff,
            on_result,
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.config.urls
    }

    /// New events are in the store: look.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Reads what the store holds pending (from before a restart); call before any new event.
    pub async fn load(&self) -> Result<(), StoreError> {
        self.lock().overflowed = self.store.is_some();
        self.reload().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands over new events (already in the store, with records on). Never waits.
    pub fn push(&self, events: Vec<Pending>) {
        let limit = if self.store.is_some() {
            STORED_MEMORY_LIMIT
        } else {
            MEMORY_LIMIT
        };
        let now = now_ms();
        {
            let mut queue = self.lock();
            for event in events {
                if queue.len() >= limit {
                    if self.store.is_some() {
                        queue.overflowed = true;
                    } else {
                        (self.on_result)("dropped");
                        tracing::warn!("webhook queue full; an event was dropped");
                    }
                    continue;
                }
                queue.enqueue(event, now);
            }
        }
        self.wake();
    }

    /// Sends until `stop`; what is pending then stays pending (in the store, for the next start).
    pub async fn run(self, stop: CancellationToken) {
        let client = match reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .user_agent(concat!("circle/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "webhooks cannot start: no HTTP client");
                return;
            }
        };
        let (done_tx, mut done_rx) = mpsc::channel::<(Pending, Outcome)>(256);
        let mut flushed = Instant::now();
        loop {
            let unsaved = self.lock().settled.len();
            if unsaved >= FLUSH_BATCH || (unsaved > 0 && flushed.elapsed() >= FLUSH_EVERY) {
                if let Err(e) = self.flush().await {
                    tracing::warn!(error = %e, "webhooks: could not record deliveries");
                }
                flushed = Instant::now();
            }
            if let Err(e) = self.reload().await {
                tracing::warn!(error = %e, "webhooks: could not read pending events");
            }
            let now = now_ms();
            let (due, next_retry, unsaved) = {
                let mut queue = self.lock();
                let due = queue.take_due(now, MAX_IN_FLIGHT);
                (due, queue.next_retry(), queue.settled.len())
            };
            for head in due {
                tokio::spawn(send(
                    client.clone(),
                    self.config.clone(),
                    head,
                    done_tx.clone(),
                ));
            }
            let mut pause = next_retry
                .map(|d| Duration::from_millis(d.saturating_sub(now)))
                .unwrap_or(Duration::from_secs(60));
            if unsaved > 0 {
                pause = pause.min(FLUSH_EVERY.saturating_sub(flushed.elapsed()));
            }
            tokio::select! {
                Some(first) = done_rx.recv() => {
                    // Outcomes that came in together are settled together.
                    let now = now_ms();
                    let mut queue = self.lock();
                    let mut next = Some(first);
                    while let Some((pending, outcome)) = next {
                        let result = queue.settle(
                            pending, outcome, now, self.backoff, self.store.is_some(),
                        );
                        (self.on_result)(result);
                        if result == "failed" {
                            tracing::warn!(attempts = MAX_ATTEMPTS, "a webhook event was given up on");
                        }
                        next = done_rx.try_recv().ok();
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = stop.cancelled() => break,
            }
        }
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "webhooks: could not record the last deliveries");
        }
    }

    /// Reads the store when it holds events the lanes do not (at start, or once an overflow
    /// has drained), after telling it what was settled.
    async fn reload(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        {
            let queue = self.lock();
            if !(queue.overflowed && queue.is_empty()) {
                return Ok(());
            }
        }
        self.flush().await?;
        let stored = self.stored(store).await?;
        let now = now_ms();
        let mut queue = self.lock();
        queue.overflowed = false;
        for event in stored {
            if queue.len() >= STORED_MEMORY_LIMIT {
                queue.overflowed = true;
                break;
            }
            queue.enqueue(event, now);
        }
        Ok(())
    }

    /// Every pending event in the store, in order, for receivers still configured.
    async fn stored(&self, store: &Store) -> Result<Vec<Pending>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, url, room, seq, body, attempts, next_attempt_at \
             FROM webhook_outbox ORDER BY url, room, seq",
        )
        .fetch_all(store.pool())
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let url: String = row.try_get("url")?;
            // A receiver no longer configured gets nothing more.
            if !self.config.urls.contains(&url) {
                continue;
            }
            pending.push(Pending {
                id: row.try_get("id")?,
                url,
                room: row.try_get("room")?,
                seq: unix_ms(row.try_get("seq")?),
                body: row.try_get("body")?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
                next_attempt_at: unix_ms(row.try_get("next_attempt_at")?),
            });
        }
        Ok(pending)
    }

    /// Tells the store, in one transaction, what became of the attempts since the last time.
    async fn flush(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let settled = std::mem::take(&mut self.lock().settled);
        if settled.is_empty() {
            return Ok(());
        }
        let mut tx = store.pool().begin().await?;
        for (id, url, retry) in &settled {
            match retry {
                Some((attempts, next)) => {
                    sqlx::query(
                        "UPDATE webhook_outbox SET attempts = $1, next_attempt_at = $2 \
                         WHERE id = $3 AND url = $4",
                    )
                    .bind(i64::from(*attempts))
                    .bind(ms(*next))
                    .bind(id)
                    .bind(url)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM webhook_outbox WHERE id = $1 AND url = $2")
                        .bind(id)
                        .bind(url)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One attempt.
async fn send(
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    pending: Pending,
    done: mpsc::Sender<(Pending, Outcome)>,
) {
    let unix_seconds = now_ms() / 1000;
    let signed = signature(&config.secret, unix_seconds, pending.body.as_bytes());
    let outcome = match client
        .post(&pending.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("circle-signature", signed)
        .body(pending.body.clone())
        .send()
        .await
    {
        Ok(response) => Outcome::of_status(response.status().as_u16()),
        Err(e) => {
            tracing::debug!(error = %e.without_url(), "webhook attempt failed");
            Outcome::Retry
        }
    };
    let _ = done.send((pending, outcome)).await;
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
