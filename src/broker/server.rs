//! Starting and stopping a broker: bind the listener, open the coordinator session, load the
//! topics and this broker's replicas (recovering their logs), register `/brokers/ids/<id>`,
//! accept connections until SIGTERM/SIGINT, then stop accepting, flush the logs and close the
//! coordinator session. When the log directory fails (`log::dir_failure`) it stops at once
//! instead: no flush, the session closed so leadership moves, and an error exit naming the
//! directory and the cause; a start-up on a directory that fails stops before registering.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};

use super::config::BrokerConfig;
use super::connection;
use super::connection_limits::{self, ConnectionLimits};
use super::context::Broker;
use super::log::clean_shutdown;
use super::producer_expiration;
use super::zk::{self, BrokerRegistration, KafkaZkClient, ZkClientError};
use super::{controller, isr, metadata_sync};

/// How long shutdown waits for connections to finish their responses.
const CONNECTION_DRAIN: Duration = Duration::from_secs(5);

/// Runs the broker until SIGTERM or SIGINT.
pub async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    let open_files = connection_limits::raise_open_file_limit();
    let listen = config.listener().clone();
    let listener = TcpListener::bind((listen.host.as_str(), listen.port))
        .await
        .with_context(|| format!("cannot listen on {}", listen.to_uri()))?;
    let bound = listener.local_addr().context("listener address")?;
    let mut advertised = config.advertised_listener().clone();
    if advertised.port == 0 {
        advertised.port = bound.port();
    }
    tracing::info!(
        "broker {} listening on {bound}, advertised as {}",
        config.broker_id,
        advertised.to_uri()
    );

    let coordinator = KafkaZkClient::connect(
        &config.zookeeper_connect,
        Duration::from_millis(config.zookeeper_session_timeout_ms),
        Duration::from_millis(config.zookeeper_connection_timeout_ms),
    )
    .await?;
    let log_dir = config.log_dir().to_path_buf();
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create log.dirs {}", log_dir.display()))?;
    let clean_start = clean_shutdown::take(&log_dir).with_context(|| {
        format!(
            "Shutdown broker because none of the log dirs in {} can be used",
            log_dir.display()
        )
    })?;
    let broker = Arc::new(Broker::new(config, coordinator));
    metadata_sync::refresh_brokers(&broker).await?;
    load_topics(&broker).await?;
    let failures = Arc::clone(broker.replicas.log_dir_failures());
    if let Some(failure) = failures.failure() {
        broker.coordinator.close(Duration::from_secs(5)).await;
        anyhow::bail!(
            "Shutdown broker because all log dirs in {} have failed (at start-up, {failure})",
            failures.dir().display()
        );
    }
    let registration = BrokerRegistration::new(
        &advertised.host,
        advertised.port,
        broker.config.broker_rack.clone(),
    );
    if broker.config.eligible_leader_replicas_enable && !clean_start {
        tracing::info!(
            "broker {} is back from an unclean shutdown (no {} in {}): it is not eligible to \
             lead until it has caught up",
            broker.id(),
            clean_shutdown::FILE_NAME,
            log_dir.display()
        );
        broker
            .coordinator
            .announce_unclean_shutdown(broker.id())
            .await
            .context("cannot announce the unclean shutdown")?;
    }
    register(&broker, &registration).await?;
    metadata_sync::refresh_brokers(&broker).await?;
    tracing::info!("broker {} started", broker.id());

    let (stop, stopped) = watch::channel(false);
    let session = tokio::spawn(watch_session(Arc::clone(&broker), registration));
    let refresher = tokio::spawn(metadata_sync::run(Arc::clone(&broker), stopped.clone()));
    let controller = tokio::spawn(controller::run(Arc::clone(&broker), stopped.clone()));
    let isr = tokio::spawn(isr::run(Arc::clone(&broker), stopped.clone()));
    let checkpointer = tokio::spawn(checkpoint_high_watermarks(
        Arc::clone(&broker),
        stopped.clone(),
    ));
    let producer_expiration = tokio::spawn(producer_expiration::run(
        Arc::clone(&broker),
        stopped.clone(),
    ));
    let limits = Arc::new(ConnectionLimits::new(&broker.config, open_files));
    if limits.max_connections < broker.config.max_connections {
        tracing::info!(
            "serving at most {} connections at once (max.connections {}, open-file limit {open_files})",
            limits.max_connections,
            broker.config.max_connections
        );
    }
    let max_connections = limits.max_connections;
    let connections = accept(listener, Arc::clone(&broker), limits, stop, stopped).await;

    if let Some(failure) = failures.failure() {
        // Nothing more is written to a failed directory (no flush, no checkpoint): leave the
        // cluster now, so that the controller moves this broker's leaderships at once.
        tracing::error!(
            "Shutdown broker because all log dirs in {} have failed",
            failures.dir().display()
        );
        session.abort();
        controller.abort();
        isr.abort();
        broker.fetchers.shutdown();
        broker.coordinator.close(Duration::from_secs(5)).await;
        anyhow::bail!(
            "the log directory {} failed ({failure}): it was this broker's only one",
            failures.dir().display()
        );
    }
    tracing::info!("broker {} shutting down", broker.id());
    // Parked JoinGroups and SyncGroups are answered NOT_COORDINATOR rather than held open.
    broker.groups.resign_all(broker.id());
    let drained = tokio::time::timeout(CONNECTION_DRAIN, async {
        let _all = connections
            .acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX))
            .await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not finish within {CONNECTION_DRAIN:?}");
    }
    session.abort();
    refresher.abort();
    controller.abort();
    isr.abort();
    broker.fetchers.shutdown();
    let _ = controller.await;
    let _ = isr.await;
    checkpointer.abort();
    let _ = checkpointer.await;
    producer_expiration.abort();
    let _ = producer_expiration.await;
    let _ = refresher.await;
    let _ = session.await;
    broker
        .replicas
        .flush_all()
        .context("cannot flush the logs")?;
    broker
        .replicas
        .checkpoint_high_watermarks()
        .context("cannot checkpoint the high watermarks")?;
    clean_shutdown::mark(&log_dir).context("cannot mark the clean shutdown")?;
    broker.coordinator.close(Duration::from_secs(5)).await;
    tracing::info!("broker {} stopped", broker.config.broker_id);
    Ok(())
}

/// Accepts connections until a signal (or `stop`) ends it. Returns the connection permits so
/// the caller can wait for open connections to finish.
async fn accept(
    listener: TcpListener,
    broker: Arc<Broker>,
    limits: Arc<ConnectionLimits>,
    stop: watch::Sender<bool>,
    mut stopped: watch::Receiver<bool>,
) -> Arc<Semaphore> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let failures = Arc::clone(broker.replicas.log_dir_failures());
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        _ => {
            tracing::error!("cannot install signal handlers");
            return permits;
        }
    };
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = stopped.wait_for(|stop| *stop) => break,
            _ = failures.failed() => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = stopped.wait_for(|stop| *stop) => break,
            _ = failures.failed() => break,
        };
        match accepted {
            Ok((socket, _)) => {
                let broker = Arc::clone(&broker);
                let limits = Arc::clone(&limits);
                let shutdown = stop.subscribe();
                tokio::spawn(async move {
                    connection::serve(socket, broker, limits, shutdown).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    controlled_shutdown(&broker).await;
    let _ = stop.send(true);
    drop(broker);
    permits
}

/// Controlled shutdown: leaves `/brokers/ids/<id>` first, so that the controller moves the
/// leadership of this broker's partitions to other ISR members while this broker still
/// answers its open connections (NOT_LEADER_OR_FOLLOWER sends clients to the new leader), and
/// waits — at most `zookeeper.session.timeout.ms` — until it leads nothing. Skipped when a
/// partition led here has no other live ISR member (its leadership could not move).
async fn controlled_shutdown(broker: &Arc<Broker>) {
    let led = |broker: &Broker| {
        broker
            .replicas
            .all()
            .iter()
            .filter(|p| p.leader_and_isr().leader == broker.id())
            .count()
    };
    let live: Vec<i32> = broker
        .metadata
        .brokers()
        .iter()
        .map(|endpoint| endpoint.broker_id)
        .filter(|id| *id != broker.id())
        .collect();
    let stranded = broker
        .replicas
        .all()
        .iter()
        .map(|p| p.leader_and_isr())
        .filter(|state| state.leader == broker.id())
        .filter(|state| !state.isr.iter().any(|id| live.contains(id)))
        .count();
    if stranded > 0 {
        // Kafka keeps such partitions on the stopping broker; leaving /brokers/ids now would
        // make them leaderless before the broker is even gone.
        tracing::info!(
            "[KafkaServer id={}] Skipping controlled shutdown: {stranded} partitions led here \
             have no other live ISR member",
            broker.id()
        );
        return;
    }
    tracing::info!(
        "[KafkaServer id={}] Starting controlled shutdown ({} partitions led here)",
        broker.id(),
        led(broker)
    );
    if let Err(error) = broker.coordinator.deregister_broker(broker.id()).await {
        tracing::warn!("controlled shutdown: cannot leave /brokers/ids: {error}");
        return;
    }
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(broker.config.zookeeper_session_timeout_ms);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    while led(broker) > 0 && tokio::time::Instant::now() < deadline {
        ticker.tick().await;
    }
    match led(broker) {
        0 => tracing::info!(
            "[KafkaServer id={}] Controlled shutdown succeeded",
            broker.id()
        ),
        left => tracing::warn!(
            "[KafkaServer id={}] Controlled shutdown: still leading {left} partitions",
            broker.id()
        ),
    }
}

/// Registers `/brokers/ids/<id>`. After a crash the previous process's ephemeral node lives
/// until its session expires, so a taken id is waited for (saying so once) for as long as
/// that registration can live ([`zk::ephemeral_lifetime`]); still taken after that, another
/// broker runs with this id. A lost connection is retried within the same bound.
async fn register(broker: &Broker, registration: &BrokerRegistration) -> anyhow::Result<()> {
    let requested = Duration::from_millis(broker.config.zookeeper_session_timeout_ms);
    let negotiated = broker.coordinator.negotiated_session_timeout();
    let max_wait = zk::ephemeral_lifetime(requested, negotiated);
    let start = tokio::time::Instant::now();
    let mut waiting = false;
    loop {
        match broker
            .coordinator
            .register_broker(broker.id(), registration)
            .await
        {
            Ok(()) => {
                if waiting {
                    tracing::info!(
                        "broker id {} registered after waiting {} ms for the previous \
                         registration to expire",
                        broker.id(),
                        start.elapsed().as_millis()
                    );
                }
                return Ok(());
            }
            Err(ZkClientError::BrokerIdTaken(_)) if start.elapsed() < max_wait => {
                if !waiting {
                    tracing::warn!(
                        "broker id {} is still registered by another coordinator session (a \
                         previous process of this broker that was killed?): waiting up to {} ms \
                         for it to expire (the negotiated session timeout {} ms, plus a tick)",
                        broker.id(),
                        max_wait.as_millis(),
                        negotiated.as_millis()
                    );
                    waiting = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // A lost connection (the session lives on): try again; a create that went through
            // is found as this session's own node.
            Err(error @ ZkClientError::Request { .. })
                if !broker.coordinator.session_ended() && start.elapsed() < max_wait =>
            {
                tracing::info!("registering broker id {} again: {error}", broker.id());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error).context("cannot register in the coordinator"),
        }
    }
}

/// Reads every topic from the coordinator into the metadata cache and opens this broker's
/// replicas (recovering their logs), taking the roles the coordinator gives them.
async fn load_topics(broker: &Arc<Broker>) -> anyhow::Result<()> {
    for name in broker.coordinator.topic_names().await? {
        let Some(record) = broker.coordinator.topic(&name).await? else {
            continue;
        };
        metadata_sync::apply_topic(broker, &record);
    }
    Ok(())
}

/// Writes the high watermark checkpoint every
/// `replica.high.watermark.checkpoint.interval.ms` (Kafka's default: 5 s), off the async
/// threads.
async fn checkpoint_high_watermarks(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let interval =
        Duration::from_millis(broker.config.replica_high_watermark_checkpoint_interval_ms);
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        let writer = Arc::clone(&broker);
        match tokio::task::spawn_blocking(move || writer.replicas.checkpoint_high_watermarks())
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!("cannot checkpoint the high watermarks: {error}"),
            Err(error) => tracing::error!("high watermark checkpoint task failed: {error}"),
        }
    }
}

/// Keeps the broker registered: when its coordinator session ends (it expired because the
/// broker was paused or cut off longer than the session timeout, or the coordinator refused
/// it) other than by this broker's own close, opens a new session and registers
/// `/brokers/ids/<id>` again, as Kafka does; the controller task contends again once that is
/// done ([`KafkaZkClient::wait_registered`]).
async fn watch_session(broker: Arc<Broker>, registration: BrokerRegistration) {
    loop {
        let Some(mut watcher) = broker.coordinator.state_watcher() else {
            return;
        };
        let mut state = watcher.peek_state();
        while !state.is_terminated() {
            state = watcher.changed().await;
            if !state.is_terminated() {
                tracing::info!("coordinator session state: {state:?}");
            }
        }
        if broker.coordinator.is_closed() {
            return;
        }
        tracing::warn!(
            "coordinator session ended ({state:?}): opening a new session to register again"
        );
        let deadline = Duration::from_millis(broker.config.zookeeper_connection_timeout_ms);
        loop {
            match broker.coordinator.reconnect(deadline).await {
                Ok(()) => break,
                Err(ZkClientError::Closed) => return,
                Err(error) => {
                    tracing::warn!("cannot reopen the coordinator session: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Until registered: this broker takes part in the cluster only then (the controller
        // task waits for it). A session that ends meanwhile is replaced by the next round.
        loop {
            match register(&broker, &registration).await {
                Ok(()) => {
                    tracing::info!("broker {} registered again", broker.id());
                    break;
                }
                Err(_) if broker.coordinator.session_ended() => break,
                Err(error) => {
                    tracing::error!("cannot register again: {error:#}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
