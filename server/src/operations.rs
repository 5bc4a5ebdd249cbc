//! Starts and stops what the clinic's own systems rely on, around the rooms: the records store
//! (migrated, repaired after a crash, swept for retention), the recorder, the webhook sender,
//! and the separate metrics listener.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::records::{self, Recorder};
use crate::store::{Store, StoreError};
use crate::webhooks::deliver::{now_ms, OnResult, Webhooks};
use crate::webhooks::WebhookConfig;

/// How often old records are swept.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long a stopping server waits for the last records to be written.
const FLUSH: Duration = Duration::from_secs(10);

/// Why operations could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperationsError {
    #[error("the records database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen for metrics on {addr}: {error}")]
    MetricsListen {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
}

/// The running operations tasks.
#[derive(Debug)]
pub struct Operations {
    pub store: Option<Store>,
    stop_recorder: CancellationToken,
    recorder: Option<JoinHandle<()>>,
    stop_background: CancellationToken,
    background: Vec<JoinHandle<()>>,
}

impl Operations {
    /// Opens the store and starts the recorder and the webhook sender. Call before any room
    /// starts, so the recorder sees every event.
    pub async fn start(
        context: &Arc<Context>,
        on_webhook: OnResult,
    ) -> Result<Self, OperationsError> {
        let settings = &context.settings().operations;
        // Bound first: a port in use stops start-up before anything is written.
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|error| OperationsError::MetricsListen { addr, error })?,
            ),
            None => None,
        };
        let store = match &settings.database {
            Some(url) => Some(Store::open(url).await?),
            None => None,
        };
        if let Some(store) = &store {
            for (room, room_settings) in store.room_settings().await? {
                context.set_room_settings(room.as_str().into(), room_settings);
            }
        }
        let webhooks = (!settings.webhook_urls.is_empty()).then(|| {
            Webhooks::new(
                WebhookConfig {
                    urls: settings.webhook_urls.clone(),
                    secret: settings.webhook_secret.clone(),
                },
                store.clone(),
                settings.webhook_backoff,
                on_webhook,
            )
        });
        // Alone, a node's open sessions at start are its own, left by a crash. In a cluster,
        // the other nodes' running sessions are open too: only those nobody marks are closed.
        let clustered = context.settings().cluster.is_some();
        let unseen_since =
            || clustered.then(|| now_ms().saturating_sub(records::UNSEEN_FOR.as_millis() as u64));
        if let Some(store) = &store {
            let closed = records::recover(store, webhooks.as_ref(), unseen_since()).await?;
            if let Some(hooks) = &webhooks {
                hooks.load().await?;
            }
            if closed > 0 {
                tracing::warn!(
                    sessions = closed,
                    "closed sessions the last run left open (it did not stop cleanly)"
                );
            }
        }
        let stop_recorder = CancellationToken::new();
        let stop_background = CancellationToken::new();
        let mut background = Vec::new();
        let recorder = (store.is_some() || webhooks.is_some()).then(|| {
            let recorder = Recorder {
                store: store.clone(),
                webhooks: webhooks.clone(),
            };
            tokio::spawn(recorder.run(context.events().subscribe(), stop_recorder.clone()))
        });
        if let (Some(store), true) = (&store, clustered) {
            background.push(tokio::spawn(recover_abandoned(
                store.clone(),
                webhooks.clone(),
                stop_background.clone(),
            )));
        }
        if let Some(hooks) = webhooks {
            background.push(tokio::spawn(hooks.run(stop_background.clone())));
        }
        if let Some(listener) = metrics_listener {
            background.push(tokio::spawn(serve_metrics(
                listener,
                context.clone(),
                stop_background.clone(),
            )));
        }
        if let (Some(store), Some(keep)) = (&store, settings.records_retention) {
            background.push(tokio::spawn(sweep(
                store.clone(),
                keep,
                stop_background.clone(),
            )));
        }
        Ok(Self {
            store,
            stop_recorder,
            recorder,
            stop_background,
            background,
        })
    }

    /// Writes what the rooms told last and stops. Call once every room has closed.
    pub async fn finish(self) {
        self.stop_recorder.cancel();
        if let Some(recorder) = self.recorder {
            if tokio::time::timeout(FLUSH, recorder).await.is_err() {
                tracing::warn!("the last records were not written in time");
            }
        }
        self.stop_background.cancel();
        for task in self.background {
            let _ = tokio::time::timeout(FLUSH, task).await;
        }
        if let Some(store) = self.store {
            store.close().await;
        }
    }
}

/// In a cluster, a node that dies and never comes back leaves its sessions open: every node
/// closes, once a minute, the sessions no node has marked for [`records::UNSEEN_FOR`] (a room
/// carried on by another node is marked by it).
async fn recover_abandoned(store: Store, webhooks: Option<Webhooks>, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let since = now_ms().saturating_sub(records::UNSEEN_FOR.as_millis() as u64);
        match records::recover(&store, webhooks.as_ref(), Some(since)).await {
            Ok(0) => {}
            Ok(closed) => tracing::warn!(
                sessions = closed,
                "closed sessions whose node stopped without closing them"
            ),
            Err(e) => tracing::warn!(error = %e, "could not close abandoned sessions"),
        }
    }
}

/// `/metrics` without a key, for a scraper on an internal network (`--metrics-listen`).
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    context: Arc<Context>,
    stop: CancellationToken,
) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let context = context.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        crate::metrics::CONTENT_TYPE,
                    )],
                    context.metrics().encode(),
                )
            }
        }),
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the metrics listener stopped");
    }
}

/// Deletes records older than `keep`, now and then hourly.
async fn sweep(store: Store, keep: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let cutoff = now_ms().saturating_sub(keep.as_millis() as u64);
        match store.delete_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "deleted records past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not delete old records"),
        }
    }
}
