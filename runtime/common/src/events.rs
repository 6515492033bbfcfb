//! Asynchronous events over NATS JetStream, only in systems that declare them.
//!
//! Every event travels in an [`Event`] envelope (id, subject, version, time, data).
//! Each subject has a stream of its own, created by whichever side starts first with
//! the same configuration. Consumers are durable pull consumers with explicit acks:
//! delivery is at least once, so handlers skip event ids they have already handled.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use uuid::Uuid;

/// Version of the envelope and payload layout; bump it when a payload changes shape.
pub const EVENT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event<T> {
    pub id: Uuid,
    pub subject: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    /// Who caused it: the id of the user (or `service:<name>`) whose request
    /// published it; absent for events published outside a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub data: T,
}

/// `post.created` → `POST_CREATED`.
pub fn stream_name(subject: &str) -> String {
    subject.replace(['.', '-'], "_").to_uppercase()
}

/// A connection to JetStream, and the prefix (`NATS_SUBJECT_PREFIX`) that keeps this
/// deployment's subjects apart from others sharing the same server: `staging.` turns
/// `post.created` into `staging.post.created` on the wire.
#[derive(Clone)]
pub struct Nats {
    js: jetstream::Context,
    prefix: String,
}

impl Nats {
    pub fn new(js: jetstream::Context, prefix: &str) -> Self {
        let mut prefix = prefix.trim().to_string();
        if !prefix.is_empty() && !prefix.ends_with('.') {
            prefix.push('.');
        }
        Self { js, prefix }
    }

    /// The subject as it travels on the wire.
    pub fn subject(&self, subject: &str) -> String {
        format!("{}{subject}", self.prefix)
    }
}

/// Connects to NATS; the client reconnects by itself whenever the server goes away.
pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Nats> {
    let client = async_nats::ConnectOptions::new()
        .name(env!("CARGO_PKG_NAME"))
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url} (NATS_URL)"))?;
    Ok(Nats::new(jetstream::new(client), prefix))
}

/// Creates the stream of `subject` unless it exists.
pub async fn ensure_stream(nats: &Nats, subject: &str) -> anyhow::Result<stream::Stream> {
    let wire = nats.subject(subject);
    let config = stream::Config {
        name: stream_name(&wire),
        subjects: vec![wire],
        ..Default::default()
    };
    let created = nats.js.get_or_create_stream(config);
    tokio::time::timeout(Duration::from_secs(10), created)
        .await
        .with_context(|| {
            format!("NATS did not answer while creating the stream of {subject}: is a server with JetStream reachable at NATS_URL?")
        })?
        .map_err(|e| anyhow::anyhow!("creating the stream of {subject}: {e}"))
}

/// Publishes events and waits for JetStream to store them.
#[derive(Clone)]
pub struct Publisher {
    nats: Nats,
}

impl Publisher {
    pub fn new(nats: Nats) -> Self {
        Self { nats }
    }

    pub async fn publish<T: Serialize>(&self, subject: &str, data: &T) -> anyhow::Result<Uuid> {
        let event = Event {
            id: Uuid::new_v4(),
            subject: subject.to_string(),
            version: EVENT_VERSION,
            occurred_at: Utc::now(),
            // Who caused it: the caller of the request being handled, when the
            // project authenticates callers.
            #[cfg(feature = "auth")]
            actor: crate::auth::current_caller(),
            #[cfg(not(feature = "auth"))]
            actor: None,
            data,
        };
        let payload = serde_json::to_vec(&event)?;
        let span = crate::otel::producer_span(subject, &event.id.to_string());
        // The consumer continues the trace of the request that published the event,
        // under the span of publishing it when spans are exported.
        let mut headers = async_nats::HeaderMap::new();
        if let Some(traceparent) = crate::trace::outgoing_header(span.as_ref()) {
            headers.insert(crate::trace::TRACEPARENT.as_str(), traceparent.as_str());
        }
        if let Some(state) = crate::trace::outgoing_state() {
            headers.insert(crate::trace::TRACESTATE.as_str(), state.as_str());
        }
        let stored = self.send(subject, headers, payload).await;
        if let Some(span) = span {
            span.finish(stored.as_ref().err().map(|e| format!("{e:#}")));
        }
        stored?;
        tracing::debug!(event_id = %event.id, subject, "event published");
        Ok(event.id)
    }

    /// Publishes `payload` on `subject` and waits for JetStream to store it.
    async fn send(
        &self,
        subject: &str,
        headers: async_nats::HeaderMap,
        payload: Vec<u8>,
    ) -> anyhow::Result<()> {
        let ack = self
            .nats
            .js
            .publish_with_headers(self.nats.subject(subject), headers, payload.into())
            .await
            .map_err(|e| anyhow::anyhow!("publishing {subject}: {e}"))?;
        ack.await
            .map_err(|e| anyhow::anyhow!("JetStream did not store {subject}: {e}"))?;
        Ok(())
    }
}

/// Runs a durable consumer of `subject` until `shutdown` turns true. Each message is
/// decoded and handed to `handle`; it is acked when `handle` succeeds and redelivered
/// later when it fails. Undecodable messages are terminated, not retried forever.
pub async fn consume<T, F, Fut>(
    nats: Nats,
    subject: &'static str,
    durable: &'static str,
    mut shutdown: watch::Receiver<bool>,
    handle: F,
) -> anyhow::Result<()>
where
    T: DeserializeOwned,
    F: Fn(Event<T>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let stream = ensure_stream(&nats, subject).await?;
    let durable = format!("{}{durable}", nats.prefix.replace('.', "-"));
    let config = consumer::pull::Config {
        durable_name: Some(durable.clone()),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        filter_subject: nats.subject(subject),
        ack_wait: Duration::from_secs(30),
        ..Default::default()
    };
    let consumer = stream
        .get_or_create_consumer(&durable, config)
        .await
        .map_err(|e| anyhow::anyhow!("creating consumer {durable}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("reading {subject}: {e}"))?;
    tracing::info!(subject, durable = %durable, "consuming events");
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => break,
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                tracing::warn!(subject, "receiving an event failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            None => break,
        };
        let event: Event<T> = match serde_json::from_slice(&message.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(subject, "dropping an undecodable event: {e}");
                let _ = message.ack_with(jetstream::AckKind::Term).await;
                continue;
            }
        };
        let id = event.id;
        let headers = message.headers.as_ref();
        let parent = headers
            .and_then(|h| h.get(crate::trace::TRACEPARENT.as_str()))
            .and_then(|v| crate::trace::TraceContext::parse(v.as_str()));
        let state = parent.and(headers).and_then(|h| {
            let fields = h.get_all(crate::trace::TRACESTATE.as_str());
            crate::trace::TraceState::parse(fields.map(|v| v.as_str()))
        });
        let exported =
            crate::otel::consumer_span(subject, &id.to_string(), parent.as_ref(), state.as_ref());
        let ctx = crate::trace::TraceContext::hop(parent.as_ref(), exported.as_ref());
        let span =
            tracing::info_span!("event", subject, event_id = %id, trace_id = %ctx.trace_id_hex());
        let hop = crate::trace::Hop {
            ctx,
            state,
            exported: exported.is_some(),
        };
        #[cfg(feature = "database")]
        crate::query_spans::attach(&span, &hop);
        // `handle` is called inside the scope and the span too: a handler that opens a
        // span before its future starts gets it nested under the event.
        let handle = &handle;
        let handling = async move { handle(event).await };
        let handled =
            crate::trace::scope(hop, tracing::Instrument::instrument(handling, span)).await;
        if let Some(exported) = exported {
            let error = handled.as_ref().err().map(|e| format!("{e:#}"));
            exported.finish(error);
        }
        match handled {
            Ok(()) => {
                if let Err(e) = message.ack().await {
                    tracing::warn!(event_id = %id, "ack failed, the event will come again: {e}");
                }
            }
            Err(e) => {
                tracing::warn!(event_id = %id, "handling failed, retrying later: {e:#}");
                let _ = message
                    .ack_with(jetstream::AckKind::Nak(Some(Duration::from_secs(2))))
                    .await;
            }
        }
    }
    tracing::info!(subject, "consumer stopped");
    Ok(())
}
