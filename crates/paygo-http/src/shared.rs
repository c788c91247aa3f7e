//! The account directory and the usage log shared by every replica, on PostgreSQL
//! (`paygo_postgres::PgRecords`; the `postgres` feature). `docs/postgres.md` ("What the
//! replicas share") says what each replica sees and when.

use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use paygo_postgres::{Appended, PgRecords};

use crate::accounts::{Line, State};
use crate::error::HttpError;

/// The stream the directory's records are appended to.
const STREAM: &str = "directory";

/// Records read in one query.
const PAGE: u32 = 1_000;

/// The shortest time between two reads for unknown keys: bounds what a flood of bad keys
/// costs the database (one read every this often) and what a new key waits on another
/// replica (at most this long).
const MISS_GAP: Duration = Duration::from_millis(20);

/// How many times a change is decided again because other replicas appended first.
const CHANGE_ATTEMPTS: usize = 32;

fn storage(what: impl std::fmt::Display) -> HttpError {
    HttpError::Storage {
        what: format!("the shared account directory: {what}"),
    }
}

/// A directory's view of the shared stream.
#[derive(Debug)]
pub(crate) struct SharedDirectory {
    records: PgRecords,
    /// The sequence number of the last record applied, and when the last read started;
    /// held while reading, and while a change is decided and appended.
    view: tokio::sync::Mutex<View>,
}

#[derive(Debug)]
struct View {
    seq: u64,
    read_at: Instant,
}

impl SharedDirectory {
    /// Reads the whole stream into `state`, and starts the task that reads what others
    /// append every `refresh`.
    pub(crate) async fn start(
        records: PgRecords,
        state: Arc<RwLock<State>>,
        refresh: Duration,
    ) -> Result<Arc<SharedDirectory>, HttpError> {
        let shared = Arc::new(SharedDirectory {
            records,
            view: tokio::sync::Mutex::new(View {
                seq: 0,
                read_at: Instant::now(),
            }),
        });
        {
            let mut view = shared.view.lock().await;
            shared.read_new(&mut view, &state).await?;
        }
        let weak: Weak<RwLock<State>> = Arc::downgrade(&state);
        let poller = Arc::clone(&shared);
        drop(state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(refresh).await;
                // The directory is gone: so is the need to read.
                let Some(state) = weak.upgrade() else { return };
                let mut view = poller.view.lock().await;
                // A failed read is tried again at the next interval; the reads callers
                // wait for (unknown keys, changes) report their own failures.
                let _ = poller.read_new(&mut view, &state).await;
            }
        });
        Ok(shared)
    }

    /// Applies every record after the view's last one.
    async fn read_new(&self, view: &mut View, state: &RwLock<State>) -> Result<(), HttpError> {
        view.read_at = Instant::now();
        loop {
            let records = self.records.read(STREAM, view.seq, PAGE).await.map_err(storage)?;
            let full = records.len() == PAGE as usize;
            for (seq, body) in records {
                let lines: Vec<Line> =
                    serde_json::from_str(&body).map_err(|e| storage(format!("record {seq}: {e}")))?;
                let mut state = state.write().unwrap_or_else(PoisonError::into_inner);
                for line in lines {
                    state.apply(line).map_err(|e| storage(format!("record {seq}: {e}")))?;
                }
                view.seq = seq;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Reads what others appended since a moment ago: nothing if a read started after the
    /// call did; otherwise after at least [`MISS_GAP`] since the last read started.
    pub(crate) async fn refresh_soon(&self, state: &RwLock<State>) -> Result<(), HttpError> {
        let asked = Instant::now();
        let mut view = self.view.lock().await;
        if view.read_at > asked {
            return Ok(());
        }
        let wait = (view.read_at + MISS_GAP).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.read_new(&mut view, state).await
    }

    /// Decides the lines of a change on the newest view and appends them after it; decides
    /// again when another replica appended first.
    pub(crate) async fn change<T>(
        &self,
        state: &RwLock<State>,
        decide: impl Fn(&State) -> Result<(Vec<Line>, T), HttpError>,
    ) -> Result<T, HttpError> {
        let mut view = self.view.lock().await;
        for _ in 0..CHANGE_ATTEMPTS {
            self.read_new(&mut view, state).await?;
            let (lines, out) = {
                let state = state.read().unwrap_or_else(PoisonError::into_inner);
                decide(&state)?
            };
            if lines.is_empty() {
                return Ok(out);
            }
            let body = serde_json::to_string(&lines).map_err(storage)?;
            let appended = self
                .records
                .append_after(STREAM, view.seq, &body)
                .await
                .map_err(storage)?;
            // Otherwise another replica appended first: read it and decide again.
            if let Appended::At(seq) = appended {
                let mut state = state.write().unwrap_or_else(PoisonError::into_inner);
                for line in lines {
                    state.apply(line).map_err(storage)?;
                }
                view.seq = seq;
                return Ok(out);
            }
        }
        Err(storage(format!(
            "other replicas changed the directory {CHANGE_ATTEMPTS} times while this change was decided"
        )))
    }
}
