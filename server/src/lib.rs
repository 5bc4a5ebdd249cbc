//! Circle's server: signalling over WebSocket, the room rules, join tokens and the embedded web
//! client. `run` is the entry point that `main` and the tests share.

pub mod api;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod context;
pub mod error;
pub mod events;
pub mod http;
pub mod media;
pub mod metrics;
pub mod operations;
pub mod records;
pub mod registry;
pub mod room;
pub mod store;
pub mod tls;
pub mod token;
pub mod turn;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Settings;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the media settings are unusable: {0}")]
    Media(#[from] media::MediaError),
    #[error(transparent)]
    Operations(#[from] operations::OperationsError),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("the other nodes cannot reach a wildcard address: give --node-url")]
    NodeUrl,
}

/// Serves on `listener` until `shutdown` is cancelled, then drains: every connection is told
/// (`session_ended`, close 1001), the last records are written, and the call returns once all
/// tasks have ended or `drain` has passed. Fails at once when the media settings are unusable
/// or the records database cannot be opened.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<(), StartError> {
    let context = context::Context::new(settings, shutdown, TaskTracker::new())?;
    let operations = start_operations(&context).await?;
    let cluster = join_cluster(&context, listener.local_addr().ok()).await?;
    serve(listener, context, operations, cluster, drain).await;
    Ok(())
}

/// Lists this node in the cluster's Redis when the settings name one. `listening` is the
/// address the server took, which the other nodes use unless `node_url` says otherwise.
pub async fn join_cluster(
    context: &Arc<context::Context>,
    listening: Option<SocketAddr>,
) -> Result<Option<Arc<cluster::member::Member>>, StartError> {
    let Some(settings) = &context.settings().cluster else {
        return Ok(None);
    };
    let url = match (&settings.node_url, listening) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(addr)) if !addr.ip().is_unspecified() => format!("http://{addr}"),
        _ => return Err(StartError::NodeUrl),
    };
    let member = cluster::member::Member::join(
        &settings.redis_url,
        settings.node_id.clone(),
        url,
        context.media().udp_addr(),
        settings.node_ttl,
        settings.room_lease,
        // Long enough for the host's death to be noticed and everyone's resume grace after it.
        settings.room_lease
            + Duration::from_millis(context.settings().room.resume_grace_ms)
            + Duration::from_secs(10),
    )
    .await?;
    Ok(Some(Arc::new(member)))
}

/// Opens the records store and starts the recorder and webhooks, before any room can start.
pub async fn start_operations(
    context: &Arc<context::Context>,
) -> Result<operations::Operations, operations::OperationsError> {
    let counted = context.clone();
    let on_webhook: webhooks::deliver::OnResult =
        Arc::new(move |result| counted.metrics().webhook_delivery(result));
    operations::Operations::start(context, on_webhook).await
}

/// [`run`] with a context and operations made beforehand (to subscribe to its events first,
/// say).
pub async fn serve(
    listener: TcpListener,
    context: Arc<context::Context>,
    operations: operations::Operations,
    cluster: Option<Arc<cluster::member::Member>>,
    drain: Duration,
) {
    // Rooms hand their state to the writer without waiting; it stops once they all have closed.
    let states_stop = CancellationToken::new();
    let states_writer = cluster.as_ref().map(|member| {
        let (sink, writes) = tokio::sync::mpsc::channel(context.settings().room_queue);
        context.keep_room_states(sink);
        tokio::spawn(member.states().write(writes, states_stop.clone()))
    });
    let registry = registry::Registry::new(context.clone(), cluster);
    context.tracker().spawn(registry::keep_up(
        registry.clone(),
        context.shutdown_token(),
    ));
    let api = api::router(api::ApiState {
        registry: registry.clone(),
        store: operations.store.clone(),
        http: reqwest::Client::new(),
    });
    http::serve(listener, registry, api, context.shutdown_token()).await;
    let tracker = context.tracker();
    tracker.close();
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        tracing::warn!("some connections did not close within the drain deadline");
    }
    states_stop.cancel();
    if let Some(writer) = states_writer {
        let _ = writer.await;
    }
    operations.finish().await;
}

/// A server running on its own task, for tests and embedding.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    context: Arc<context::Context>,
}

impl RunningServer {
    /// Binds `addr` (port 0 for any free port) and starts serving.
    pub async fn start(addr: SocketAddr, settings: Settings) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let context = context::Context::new(settings, shutdown.clone(), TaskTracker::new())
            .map_err(std::io::Error::other)?;
        let operations = start_operations(&context)
            .await
            .map_err(std::io::Error::other)?;
        let cluster = join_cluster(&context, Some(addr))
            .await
            .map_err(std::io::Error::other)?;
        let task = tokio::spawn(serve(
            listener,
            context.clone(),
            operations,
            cluster,
            Duration::from_secs(5),
        ));
        Ok(Self {
            addr,
            shutdown,
            task,
            context,
        })
    }

    /// Every room event from now on.
    pub fn events(&self) -> events::Subscription {
        self.context.events().subscribe()
    }

    /// Room events subscribers lost by falling behind.
    pub fn events_dropped(&self) -> u64 {
        self.context.events().dropped()
    }

    /// Drains and waits for the server to stop.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
