//! What the Redis tests share: the server's URL from the environment, a key prefix of each
//! test's own (its keys deleted when it ends), and the lock that keeps the Redis-restart
//! test away from the others.
//!
//! Serialization: the restart test (`tests/restart.rs`, a binary of its own) shuts Redis
//! down and starts it again. Every other test that uses Redis holds a *shared* lock on one
//! file while it runs, and the restart test holds it *exclusively*, so no test of this
//! crate ever sees that outage, in this process or another one on the machine (cargo runs
//! test binaries one after the other, but two `cargo test` runs may overlap).

#![allow(dead_code)] // each test binary uses its own part

use std::fs::File;

/// The server's URL, or `None` with the reason printed.
pub(crate) fn url() -> Option<String> {
    match std::env::var("PAYGO_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: PAYGO_TEST_REDIS_URL is not set (CI sets it; see .ci/run)");
            None
        }
    }
}

fn lock_file() -> File {
    let path = std::env::temp_dir().join("paygo-redis-tests.lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("the lock file opens")
}

/// Held while a test uses Redis: shared, or exclusive for the restart test.
pub(crate) struct RedisLock(File);

impl RedisLock {
    pub(crate) fn shared() -> RedisLock {
        let file = lock_file();
        file.lock_shared().expect("the shared lock");
        RedisLock(file)
    }

    pub(crate) fn exclusive() -> RedisLock {
        let file = lock_file();
        file.lock().expect("the exclusive lock");
        RedisLock(file)
    }
}

/// A test's own key prefix; its keys are deleted when it is dropped (also when the test
/// fails).
pub(crate) struct TestPrefix {
    pub(crate) url: String,
    pub(crate) prefix: String,
}

impl TestPrefix {
    pub(crate) fn new(url: &str, test: &str) -> TestPrefix {
        let prefix = format!("t-{test}-{}", std::process::id());
        delete_prefix(url, &prefix);
        TestPrefix {
            url: url.to_owned(),
            prefix,
        }
    }

    /// The prefix of the `n`-th store of the test.
    pub(crate) fn nth(&self, n: u64) -> String {
        format!("{}-{n}", self.prefix)
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

/// Deletes every key whose name starts with `{prefix` (the store's hash tag), with a
/// blocking connection of its own (works from `drop`, in or out of a runtime).
pub(crate) fn delete_prefix(url: &str, prefix: &str) {
    let url = url.to_owned();
    let pattern = format!("{{{prefix}*");
    let _ = std::thread::spawn(move || {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else { return };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<u64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    })
    .join();
}
