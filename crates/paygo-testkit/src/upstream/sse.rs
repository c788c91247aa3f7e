//! Server-sent events: a task sends prepared frames, with the chunk delay between them, and
//! stops as the directives ask (cut, ended early, stalled).

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Gauge, Shared};

/// How a stream stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Every frame, then a clean end.
    Complete,
    /// This many frames, then the connection is aborted.
    Abort(usize),
    /// This many frames, then a clean end (the stream is short).
    End(usize),
    /// This many frames, then nothing until the client goes away or the server stops.
    Stall(usize),
}

/// `data: {json}\n\n`.
pub(crate) fn data(value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// `event: NAME\ndata: {json}\n\n`.
pub(crate) fn event(name: &str, value: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

/// A `text/event-stream` response whose body a spawned task sends.
pub(crate) fn respond(shared: Arc<Shared>, frames: Vec<Bytes>, stop: Stop) -> Response {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, io::Error>>(1);
    let guard = Gauge::open(&shared.open_streams);
    tokio::spawn(produce(shared, tx, frames, stop, guard));
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    ([(CONTENT_TYPE, "text/event-stream"), (CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn produce(
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    frames: Vec<Bytes>,
    stop: Stop,
    _open: Gauge,
) {
    let delay = Duration::from_millis(shared.options.stream_chunk_delay_ms);
    let limit = match stop {
        Stop::Complete => frames.len(),
        Stop::Abort(k) | Stop::End(k) | Stop::Stall(k) => k.min(frames.len()),
    };
    let aborted = || {
        shared.streams_aborted.fetch_add(1, Ordering::SeqCst);
    };
    for (i, frame) in frames.into_iter().take(limit).enumerate() {
        if i > 0 && !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = tx.closed() => return aborted(),
                () = shared.shut_down() => return aborted(),
            }
        }
        if tx.send(Ok(frame)).await.is_err() {
            return aborted();
        }
    }
    match stop {
        Stop::Complete => {
            shared.streams_completed.fetch_add(1, Ordering::SeqCst);
        }
        Stop::End(_) => aborted(),
        Stop::Abort(_) => {
            // Let the server flush the frames already sent before the connection goes.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx
                .send(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "fake upstream cut the stream",
                )))
                .await;
            aborted();
        }
        Stop::Stall(_) => {
            tokio::select! {
                () = tx.closed() => {}
                () = shared.shut_down() => {}
            }
            aborted();
        }
    }
}
