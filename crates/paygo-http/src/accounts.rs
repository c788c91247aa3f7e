//! The account directory: who an API key belongs to, and what an invoice needs to know of
//! each account (name, country, VAT ID). API keys are 256 random bits, shown once, and
//! kept only as their BLAKE3 hash; a key is found by its hash, and hashes compare in
//! constant time.
//!
//! The directory is an append-only JSON-lines file (`accounts.jsonl` in the data
//! directory), each line synced before the operation is acknowledged. A last line without
//! its newline was never acknowledged and is ignored; any other unreadable line refuses
//! the open.
//!
//! With the `postgres` feature, a directory can instead be shared by every replica
//! (`Directory::shared`): its records are a stream in PostgreSQL
//! (`paygo_postgres::PgRecords`), each replica keeps the whole directory in memory and
//! reads what others appended every `refresh` interval, and at once when a key is not
//! found. A change is appended only on the newest view (compare-and-append), so two
//! replicas never give out one account id, and a key revoked anywhere is refused
//! everywhere within one refresh interval.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use paygo_billing::{AutoTopUpRule, CustomerId};
use serde::{Deserialize, Serialize};

use crate::error::HttpError;
use crate::jsonl::open_lines;

/// How long after its expiry a used sign-in link is still remembered (a margin for clock
/// differences between replicas).
const LINK_FORGET_AFTER_NS: u64 = 3_600_000_000_000;

/// The prefix of every API key paygo makes.
pub const KEY_PREFIX: &str = "sk-paygo-";

/// An API key's public id (`key_` and 16 hex digits of its hash's start): what an operator
/// revokes it by, and what logs may show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account as the operator created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's id (its billing customer id).
    pub id: CustomerId,
    /// The name on its invoices.
    pub name: String,
    /// Its country, ISO 3166 alpha-2 (`"IE"`): the billing country of its invoices.
    pub country: String,
    /// A business customer's VAT ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_id: Option<String>,
    /// The address lines of its invoices (without the country); may be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<String>,
    /// Its auto top-up rule, as last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_top_up: Option<AutoTopUpRule>,
    /// The purchase-order reference its invoices show, if the customer gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_order: Option<String>,
    /// Whether `vat_id` is one the operator registered (confirmed with VIES before): true
    /// for the operator's, false for one the customer gave in the portal (confirmed by the
    /// server's VIES confirmer, if it has one, each time it is used).
    #[serde(default = "registered", skip_serializing_if = "is_true")]
    pub vat_id_registered: bool,
}

fn registered() -> bool {
    true
}

// serde's skip_serializing_if takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_true(b: &bool) -> bool {
    *b
}

/// The VAT-ID confirmer of a server: an ID the operator registered on an account is
/// confirmed (the operator checked it with VIES before registering it); any other (one a
/// customer gave in the portal) is asked of `vies`, or is unconfirmed (`Unknown`: VAT is
/// charged, a refund waits) when the server has none.
pub(crate) struct RegisteredOrVies {
    pub(crate) state: Arc<RwLock<State>>,
    pub(crate) vies: Option<Arc<dyn paygo_vat::VatIdConfirmer + Send + Sync>>,
}

impl paygo_vat::VatIdConfirmer for RegisteredOrVies {
    fn confirm(&self, id: &paygo_vat::VatId) -> paygo_vat::VatIdStatus {
        let text = id.to_string();
        let registered = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .accounts
            .values()
            .any(|a| a.vat_id_registered && a.vat_id.as_deref() == Some(text.as_str()));
        if registered {
            return paygo_vat::VatIdStatus::Valid;
        }
        self.vies
            .as_ref()
            .map_or(paygo_vat::VatIdStatus::Unknown, |v| v.confirm(id))
    }
}

/// What a customer may change of their account's billing details
/// ([`Directory::set_details`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// The name on invoices.
    pub name: String,
    /// The address lines (without the country).
    pub address: Vec<String>,
    /// The country, ISO 3166 alpha-2 in capitals.
    pub country: String,
    /// A business customer's VAT ID, as given (checked by the caller).
    pub vat_id: Option<String>,
    /// A purchase-order reference for invoices.
    pub purchase_order: Option<String>,
}

/// An active API key as a portal lists it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// The account.
    pub account: CustomerId,
    /// The name its creator gave it.
    pub name: Option<String>,
    /// When it was made, in nanoseconds since the Unix epoch (unknown for keys made before
    /// it was recorded).
    pub created_ns: Option<u64>,
    /// Its last four characters (unknown for keys made before they were recorded).
    pub last4: Option<String>,
    /// When this process last saw it authenticate a request (not kept across restarts or
    /// shared between replicas).
    pub last_used_ns: Option<u64>,
}

/// A new key: the secret (shown once) and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The key itself: give it to the customer; paygo keeps only its hash.
    pub secret: String,
    /// Its id.
    pub id: KeyId,
}

/// One line of the directory file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Line {
    Account(Account),
    Key {
        key_id: KeyId,
        account: CustomerId,
        hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_ns: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last4: Option<String>,
    },
    Revoke {
        key_id: KeyId,
    },
    AutoTopUp {
        account: CustomerId,
        rule: Option<AutoTopUpRule>,
    },
    Details {
        account: CustomerId,
        details: Details,
    },
    /// A one-time portal sign-in link used (its nonce), until it would have expired.
    LinkUsed {
        nonce: String,
        expires_ns: u64,
    },
    /// A portal session signed out at `at_ns` (its nonce), until it would have expired.
    SessionEnded {
        nonce: String,
        expires_ns: u64,
        at_ns: u64,
    },
}

#[derive(Debug, Default)]
pub(crate) struct State {
    accounts: HashMap<CustomerId, Account>,
    /// Key hash → (key id, account).
    keys: HashMap<[u8; 32], (KeyId, CustomerId)>,
    /// Key id → key hash.
    ids: HashMap<KeyId, [u8; 32]>,
    /// Key id → what a portal shows of it (active keys).
    key_info: HashMap<KeyId, KeyInfo>,
    /// One-time sign-in links used: nonce → when the link expires (ns).
    links_used: HashMap<String, u64>,
    /// Portal sessions signed out: nonce → when the session expires (ns).
    sessions_ended: HashMap<String, u64>,
    next_account: u128,
}

impl State {
    pub(crate) fn apply(&mut self, line: Line) -> Result<(), String> {
        match line {
            Line::Account(account) => {
                self.next_account = self.next_account.max(account.id.0.saturating_add(1));
                self.accounts.insert(account.id, account);
            }
            Line::Key {
                key_id,
                account,
                hash,
                name,
                created_ns,
                last4,
            } => {
                let hash = blake3::Hash::from_hex(&hash).map_err(|e| format!("key hash: {e}"))?;
                self.keys.insert(*hash.as_bytes(), (key_id.clone(), account));
                self.ids.insert(key_id.clone(), *hash.as_bytes());
                self.key_info.insert(
                    key_id.clone(),
                    KeyInfo {
                        id: key_id,
                        account,
                        name,
                        created_ns,
                        last4,
                        last_used_ns: None,
                    },
                );
            }
            Line::Revoke { key_id } => {
                if let Some(hash) = self.ids.remove(&key_id) {
                    self.keys.remove(&hash);
                }
                self.key_info.remove(&key_id);
            }
            Line::LinkUsed { nonce, expires_ns } => {
                // Links that expired before this one cannot be used anyway: forgotten, so
                // that the set holds at most the links of one validity period.
                self.links_used.retain(|_, e| *e + LINK_FORGET_AFTER_NS > expires_ns);
                self.links_used.insert(nonce, expires_ns);
            }
            Line::SessionEnded {
                nonce,
                expires_ns,
                at_ns,
            } => {
                // Sessions that had expired when this one was signed out are refused anyway:
                // forgotten (by the line's own time, so every replica forgets the same).
                self.sessions_ended.retain(|_, e| *e > at_ns);
                if expires_ns > at_ns {
                    self.sessions_ended.insert(nonce, expires_ns);
                }
            }
            Line::Details { account, details } => {
                if let Some(a) = self.accounts.get_mut(&account) {
                    // The operator's registration holds for the same ID only.
                    a.vat_id_registered = a.vat_id_registered && a.vat_id == details.vat_id;
                    a.name = details.name;
                    a.address = details.address;
                    a.country = details.country;
                    a.vat_id = details.vat_id;
                    a.purchase_order = details.purchase_order;
                }
            }
            Line::AutoTopUp { account, rule } => {
                if let Some(a) = self.accounts.get_mut(&account) {
                    a.auto_top_up = rule;
                }
            }
        }
        Ok(())
    }
}

/// The account directory (see the module docs). `Send + Sync`: lookups take a read lock,
/// changes are serialized and synced.
#[derive(Debug)]
pub struct Directory {
    state: Arc<RwLock<State>>,
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
    /// Held while a change is decided and recorded (file and memory directories).
    creating: Mutex<()>,
    /// The stream every replica shares, when shared.
    #[cfg(feature = "postgres")]
    shared: Option<Arc<crate::shared::SharedDirectory>>,
    /// When this process last saw each key authenticate (ns since the epoch).
    last_used: RwLock<HashMap<KeyId, std::sync::atomic::AtomicU64>>,
    /// Set when a write or a sync of the file failed: the directory has failed closed.
    failed: AtomicBool,
}

/// Checks an account's name, country and address lines.
fn check_party(name: &str, country: &str, address: &[String]) -> Result<(), HttpError> {
    if address.len() > 6 || address.iter().any(|l| l.trim().is_empty() || l.len() > 200) {
        return Err(HttpError::InvalidField {
            field: "address",
            expected: "at most 6 non-empty lines of at most 200 bytes",
        });
    }
    if name.trim().is_empty() || name.len() > 200 {
        return Err(HttpError::InvalidField {
            field: "name",
            expected: "a non-empty name of at most 200 bytes",
        });
    }
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::InvalidField {
            field: "country",
            expected: "an ISO 3166 alpha-2 code in capitals, such as \"IE\"",
        });
    }
    Ok(())
}

/// The hash of a key.
fn hash_key(secret: &str) -> blake3::Hash {
    blake3::hash(secret.as_bytes())
}

/// A new key's secret (256 random bits after [`KEY_PREFIX`]) and its hash.
fn new_secret() -> Result<(String, blake3::Hash), HttpError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| HttpError::Random { reason: e.to_string() })?;
    let mut secret = String::with_capacity(KEY_PREFIX.len() + 64);
    secret.push_str(KEY_PREFIX);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(secret, "{b:02x}");
    }
    let hash = hash_key(&secret);
    Ok((secret, hash))
}

/// What a new key is recorded with besides its hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyOptions<'a> {
    /// A name for it (at most 100 bytes).
    pub name: Option<&'a str>,
    /// When it is made, in nanoseconds since the Unix epoch.
    pub created_ns: Option<u64>,
}

/// The line that records a key of `account`, and the key.
fn key_of(account: CustomerId, secret: &str, hash: &blake3::Hash, options: KeyOptions<'_>) -> (Line, NewKey) {
    let id = KeyId(format!("key_{}", &hash.to_hex()[..16]));
    let line = Line::Key {
        key_id: id.clone(),
        account,
        hash: hash.to_hex().to_string(),
        name: options.name.map(str::to_owned),
        created_ns: options.created_ns,
        last4: Some(secret[secret.len().saturating_sub(4)..].to_owned()),
    };
    (
        line,
        NewKey {
            secret: secret.to_owned(),
            id,
        },
    )
}

impl Directory {
    /// A directory in memory (nothing survives the process).
    pub fn in_memory() -> Directory {
        Directory {
            state: Arc::new(RwLock::new(State {
                next_account: 1,
                ..State::default()
            })),
            file: None,
            path: None,
            creating: Mutex::new(()),
            #[cfg(feature = "postgres")]
            shared: None,
            last_used: RwLock::default(),
            failed: AtomicBool::new(false),
        }
    }

    /// Opens (or creates) the directory in `dir` (`accounts.jsonl`).
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the file cannot be read or written, or holds a line
    /// that is not a directory record (damage is never skipped); [`HttpError::Config`]
    /// when another process has the directory open.
    pub fn open(dir: impl AsRef<Path>) -> Result<Directory, HttpError> {
        let path = dir.as_ref().join("accounts.jsonl");
        let mut state = State {
            next_account: 1,
            ..State::default()
        };
        let file = open_lines(&path, |line: Line| state.apply(line))?;
        // One server per data directory: with the billing store in a database, the
        // ledger's lock no longer keeps a second one away from these files.
        file.try_lock().map_err(|e| HttpError::Config {
            what: format!(
                "{}: another server has this data directory open ({e}); give each replica a data directory of its own",
                path.display()
            ),
        })?;
        Ok(Directory {
            state: Arc::new(RwLock::new(state)),
            file: Some(Mutex::new(file)),
            path: Some(path),
            creating: Mutex::new(()),
            #[cfg(feature = "postgres")]
            shared: None,
            last_used: RwLock::default(),
            failed: AtomicBool::new(false),
        })
    }

    /// The directory every replica on `records`' schema shares (see the module docs): read
    /// in full now, then again every `refresh` (by a task on the current tokio runtime,
    /// which stops when the directory is dropped).
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when the database cannot be read or holds a record that is
    /// not a directory record.
    #[cfg(feature = "postgres")]
    pub async fn shared(
        records: paygo_postgres::PgRecords,
        refresh: std::time::Duration,
    ) -> Result<Directory, HttpError> {
        let state = Arc::new(RwLock::new(State {
            next_account: 1,
            ..State::default()
        }));
        let shared = crate::shared::SharedDirectory::start(records, Arc::clone(&state), refresh).await?;
        Ok(Directory {
            state,
            file: None,
            path: None,
            creating: Mutex::new(()),
            shared: Some(shared),
            last_used: RwLock::default(),
            failed: AtomicBool::new(false),
        })
    }

    /// Records the lines `decide` makes of the newest state and applies them: written and
    /// synced to the file, or appended to the shared stream on the newest view (decided
    /// again on a newer view when another replica appended first).
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    async fn change<T>(&self, decide: impl Fn(&State) -> Result<(Vec<Line>, T), HttpError>) -> Result<T, HttpError> {
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            return shared.change(&self.state, decide).await;
        }
        let _creating = self.creating.lock().unwrap_or_else(PoisonError::into_inner);
        let (lines, out) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            decide(&state)?
        };
        for line in lines {
            self.commit(line)?;
        }
        Ok(out)
    }

    /// Appends `line` and syncs it, then applies it to the state.
    fn commit(&self, line: Line) -> Result<(), HttpError> {
        if let Some(file) = &self.file {
            let mut text = serde_json::to_string(&line).map_err(|e| HttpError::Storage { what: e.to_string() })?;
            text.push('\n');
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            let path = self.path.as_deref().unwrap_or_else(|| Path::new("accounts.jsonl"));
            if self.failed.load(Ordering::Relaxed) {
                return Err(HttpError::Storage {
                    what: format!(
                        "{}: an earlier write failed; nothing more is written until the directory is opened again",
                        path.display()
                    ),
                });
            }
            let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_data());
            if let Err(e) = written {
                // Fail closed: part of the line may be in the file, and a later line
                // written after it would join it into a line that refuses the next open
                // (a torn *last* line is cut there). After a failed sync, what the disk
                // holds is unknown (PostgreSQL's fsync lesson): no retry either.
                self.failed.store(true, Ordering::Relaxed);
                return Err(HttpError::Storage {
                    what: format!("{}: {e}", path.display()),
                });
            }
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.apply(line).map_err(|what| HttpError::Storage { what })
    }

    /// Whether the directory's file has failed closed: a write or a sync failed, and no
    /// change is written until the directory is opened again (lookups go on).
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Creates an account with a new id and its first key.
    ///
    /// # Errors
    ///
    /// [`HttpError::InvalidField`] for an empty name or a country that is not two
    /// letters; [`HttpError::Storage`] when the directory cannot be written.
    pub async fn create_account(
        &self,
        name: &str,
        country: &str,
        vat_id: Option<&str>,
        address: &[String],
    ) -> Result<(Account, NewKey), HttpError> {
        check_party(name, country, address)?;
        let (secret, hash) = new_secret()?;
        // The next id of the newest view, with its first key, in one change.
        self.change(|state| {
            let account = Account {
                id: CustomerId(state.next_account),
                name: name.to_owned(),
                country: country.to_owned(),
                vat_id: vat_id.map(str::to_owned),
                address: address.to_vec(),
                auto_top_up: None,
                purchase_order: None,
                vat_id_registered: true,
            };
            let (key_line, key) = key_of(account.id, &secret, &hash, KeyOptions::default());
            Ok((vec![Line::Account(account.clone()), key_line], (account, key)))
        })
        .await
    }

    /// A new key for `account`.
    ///
    /// # Errors
    ///
    /// [`HttpError::UnknownAccount`]; [`HttpError::Storage`]; [`HttpError::Random`] when
    /// the operating system's random source fails.
    pub async fn create_key(&self, account: CustomerId) -> Result<NewKey, HttpError> {
        self.create_key_with(account, KeyOptions::default()).await
    }

    /// A new key for `account`, with a name and its creation time.
    ///
    /// # Errors
    ///
    /// As [`Directory::create_key`]; [`HttpError::InvalidField`] for a blank name or one
    /// longer than 100 bytes.
    pub async fn create_key_with(&self, account: CustomerId, options: KeyOptions<'_>) -> Result<NewKey, HttpError> {
        if options.name.is_some_and(|n| n.trim().is_empty() || n.len() > 100) {
            return Err(HttpError::InvalidField {
                field: "name",
                expected: "a key name of 1 to 100 bytes",
            });
        }
        let (secret, hash) = new_secret()?;
        self.change(|state| {
            if !state.accounts.contains_key(&account) {
                return Err(HttpError::UnknownAccount { account });
            }
            let (line, key) = key_of(account, &secret, &hash, options);
            Ok((vec![line], key))
        })
        .await
    }

    /// The active keys of `account`, oldest first (keys of unknown age first).
    pub fn keys(&self, account: CustomerId) -> Vec<KeyInfo> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let used = self.last_used.read().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<KeyInfo> = state
            .key_info
            .values()
            .filter(|k| k.account == account)
            .map(|k| KeyInfo {
                last_used_ns: used
                    .get(&k.id)
                    .map(|t| t.load(std::sync::atomic::Ordering::Relaxed))
                    .filter(|t| *t > 0),
                ..k.clone()
            })
            .collect();
        keys.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        keys
    }

    /// The account of an active key id.
    pub fn key_account(&self, id: &KeyId) -> Option<CustomerId> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.key_info.get(id).map(|k| k.account)
    }

    /// Notes that `key` authenticated a request at `now_ns` (what [`KeyInfo::last_used_ns`]
    /// shows).
    pub fn touch(&self, key: &KeyId, now_ns: u64) {
        {
            let used = self.last_used.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(t) = used.get(key) {
                t.fetch_max(now_ns, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
        self.last_used
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .fetch_max(now_ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records that the one-time sign-in link `nonce` (valid until `expires_ns`) was used;
    /// `false` when it was used before (on any replica sharing the directory).
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`].
    pub async fn use_link(&self, nonce: &str, expires_ns: u64) -> Result<bool, HttpError> {
        self.change(|state| {
            if state.links_used.contains_key(nonce) {
                return Ok((Vec::new(), false));
            }
            Ok((
                vec![Line::LinkUsed {
                    nonce: nonce.to_owned(),
                    expires_ns,
                }],
                true,
            ))
        })
        .await
    }

    /// Records that the portal session `nonce` (valid until `expires_ns`) was signed out at
    /// `now_ns`. This directory refuses it at once ([`Directory::session_ended`]); every
    /// replica sharing the directory from its next read of the shared records (its refresh
    /// interval), and a file directory after a restart too.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`].
    pub async fn end_session(&self, nonce: &str, expires_ns: u64, now_ns: u64) -> Result<(), HttpError> {
        self.change(|state| {
            if state.sessions_ended.contains_key(nonce) {
                return Ok((Vec::new(), ()));
            }
            Ok((
                vec![Line::SessionEnded {
                    nonce: nonce.to_owned(),
                    expires_ns,
                    at_ns: now_ns,
                }],
                (),
            ))
        })
        .await
    }

    /// Whether the portal session `nonce` was signed out (here, or on a replica whose
    /// sign-out this directory has read).
    pub fn session_ended(&self, nonce: &str) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.sessions_ended.contains_key(nonce)
    }

    /// Records an account's billing details (name, address, country, VAT ID, purchase
    /// order), as invoices issued from now on show them.
    ///
    /// # Errors
    ///
    /// [`HttpError::UnknownAccount`]; [`HttpError::InvalidField`] for a name, country or
    /// address as [`Directory::create_account`] refuses them, or a purchase-order reference
    /// or VAT ID that is blank or longer than 100 bytes; [`HttpError::Storage`].
    pub async fn set_details(&self, account: CustomerId, details: Details) -> Result<(), HttpError> {
        check_party(&details.name, &details.country, &details.address)?;
        let blank_or_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.trim().is_empty() || v.len() > 100);
        if blank_or_long(&details.purchase_order) {
            return Err(HttpError::InvalidField {
                field: "purchase_order",
                expected: "a reference of 1 to 100 bytes",
            });
        }
        if blank_or_long(&details.vat_id) {
            return Err(HttpError::InvalidField {
                field: "vat_id",
                expected: "a VAT ID of 1 to 100 bytes",
            });
        }
        self.change(|state| {
            if !state.accounts.contains_key(&account) {
                return Err(HttpError::UnknownAccount { account });
            }
            Ok((
                vec![Line::Details {
                    account,
                    details: details.clone(),
                }],
                (),
            ))
        })
        .await
    }

    /// Revokes a key: it authenticates nothing from now on.
    ///
    /// # Errors
    ///
    /// [`HttpError::UnknownKey`] for a key id that is not active; [`HttpError::Storage`].
    pub async fn revoke_key(&self, id: &KeyId) -> Result<(), HttpError> {
        self.change(|state| {
            if !state.ids.contains_key(id) {
                return Err(HttpError::UnknownKey { key_id: id.0.clone() });
            }
            Ok((vec![Line::Revoke { key_id: id.clone() }], ()))
        })
        .await
    }

    /// Records an account's auto top-up rule.
    ///
    /// # Errors
    ///
    /// [`HttpError::UnknownAccount`]; [`HttpError::Storage`].
    pub async fn set_auto_top_up(&self, account: CustomerId, rule: Option<AutoTopUpRule>) -> Result<(), HttpError> {
        self.change(|state| {
            if !state.accounts.contains_key(&account) {
                return Err(HttpError::UnknownAccount { account });
            }
            Ok((vec![Line::AutoTopUp { account, rule }], ()))
        })
        .await
    }

    /// The account a key belongs to, and the key's id; `None` for a key that is not
    /// active. The key is found by its hash; the stored hash is compared again in
    /// constant time.
    pub fn authenticate(&self, secret: &str) -> Option<(CustomerId, KeyId)> {
        let hash = hash_key(secret);
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let (id, account) = state.keys.get(hash.as_bytes())?;
        let stored = state.ids.get(id)?;
        // blake3::Hash's equality is constant-time.
        (blake3::Hash::from(*stored) == hash).then(|| (*account, id.clone()))
    }

    /// As [`Directory::authenticate`]; a shared directory that does not know the key reads
    /// what the other replicas appended first (at most one read every few milliseconds,
    /// whatever the number of unknown keys), so that a key made on one replica works at
    /// once on every other.
    ///
    /// # Errors
    ///
    /// [`HttpError::Storage`] when a shared directory cannot be read.
    // Async for the shared store (the `postgres` feature); without it the work is in memory.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn authenticate_fresh(&self, secret: &str) -> Result<Option<(CustomerId, KeyId)>, HttpError> {
        if let Some(found) = self.authenticate(secret) {
            return Ok(Some(found));
        }
        #[cfg(feature = "postgres")]
        if let Some(shared) = &self.shared {
            shared.refresh_soon(&self.state).await?;
            return Ok(self.authenticate(secret));
        }
        Ok(None)
    }

    /// The account with this id.
    pub fn account(&self, id: CustomerId) -> Option<Account> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .accounts
            .get(&id)
            .cloned()
    }

    /// The server's VAT-ID confirmer over this directory (see [`RegisteredOrVies`]).
    pub(crate) fn confirmer(&self, vies: Option<Arc<dyn paygo_vat::VatIdConfirmer + Send + Sync>>) -> RegisteredOrVies {
        RegisteredOrVies {
            state: Arc::clone(&self.state),
            vies,
        }
    }

    /// Every account, by id.
    pub fn accounts(&self) -> Vec<Account> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Account> = state.accounts.values().cloned().collect();
        all.sort_by_key(|a| a.id);
        all
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design

    use super::{Directory, HttpError};

    /// A write that fails (a handle that cannot write here; a full disk in life) fails the
    /// directory closed: a later change is refused even once writing would work again, so
    /// no line is written after a torn one (which would make the file refuse to open), and
    /// the file opens again with what was acknowledged.
    #[tokio::test]
    async fn a_failed_write_fails_the_directory_closed() {
        let dir = std::env::temp_dir().join(format!("paygo-dir-fails-closed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accounts.jsonl");
        {
            let d = Directory::open(&dir).unwrap();
            d.create_account("Acme", "IE", None, &[]).await.unwrap();
            let handle = d.file.as_ref().unwrap();
            *handle.lock().unwrap() = std::fs::File::open(&path).unwrap();
            assert!(matches!(
                d.create_account("Beta", "IE", None, &[]).await,
                Err(HttpError::Storage { .. })
            ));
            *handle.lock().unwrap() = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            let refused = d.create_account("Gamma", "IE", None, &[]).await.unwrap_err();
            assert!(refused.to_string().contains("an earlier write failed"), "{refused}");
            assert!(d.has_failed());
        }
        let d = Directory::open(&dir).unwrap();
        let names: Vec<String> = d.accounts().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["Acme"]);
        drop(d);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const HOUR: u64 = 3_600_000_000_000;

    /// A signed-out portal session stays refused after the directory is opened again (a
    /// restarted server), and is forgotten once a later sign-out shows it has expired.
    #[tokio::test]
    async fn sign_outs_outlive_a_restart_and_are_forgotten_once_expired() {
        let dir = std::env::temp_dir().join(format!("paygo-signout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = 1_764_000_000 * 1_000_000_000;
        {
            let d = Directory::open(&dir).unwrap();
            assert!(!d.session_ended("n1"));
            d.end_session("n1", t0 + 8 * HOUR, t0).await.unwrap();
            d.end_session("n1", t0 + 8 * HOUR, t0 + 1).await.unwrap(); // twice: one line
            assert!(d.session_ended("n1"));
            assert!(!d.session_ended("n2"));
        }
        let d = Directory::open(&dir).unwrap();
        assert!(
            d.session_ended("n1"),
            "a restart does not bring a signed-out session back"
        );
        // Signed out after n1 expired: n1 is forgotten (it is refused as expired anyway).
        d.end_session("n2", t0 + 17 * HOUR, t0 + 9 * HOUR).await.unwrap();
        assert!(!d.session_ended("n1"));
        assert!(d.session_ended("n2"));
        let lines = std::fs::read_to_string(dir.join("accounts.jsonl")).unwrap();
        assert_eq!(lines.matches("\"session_ended\"").count(), 2, "{lines}");
        drop(d);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
