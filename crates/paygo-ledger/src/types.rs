//! Ids, flags, accounts and transfers: the data of the ledger.

use std::fmt;
use std::ops::BitOr;

use paygo_credits::Credits;
use serde::{Deserialize, Serialize};

/// An account id, chosen by the caller. `0` and `u128::MAX` are reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub u128);

/// A transfer id, chosen by the caller: the idempotency key of the transfer. `0` and
/// `u128::MAX` are reserved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferId(pub u128);

impl TransferId {
    /// Bits below the millisecond time in a time-ordered id (`UUIDv7` and `ULID` lay ids out
    /// the same way: the top 48 bits are milliseconds since the Unix epoch).
    pub const TIME_SHIFT: u32 = 80;

    /// A time-ordered id: `unix_ms` (milliseconds since the Unix epoch, at most 2^48 - 1)
    /// in the top 48 bits and the low 80 bits of `low` below them — the layout of a
    /// `UUIDv7` or a `ULID` read as a big-endian `u128`. A ledger with an [`IdWindow`] needs
    /// such ids.
    ///
    /// # Errors
    ///
    /// [`crate::LedgerError::IdTime`] when `unix_ms` does not fit in 48 bits.
    pub fn from_time(unix_ms: u64, low: u128) -> Result<TransferId, crate::LedgerError> {
        if unix_ms >> 48 != 0 {
            return Err(crate::LedgerError::IdTime { unix_ms });
        }
        Ok(Self::from_ms(unix_ms, low))
    }

    /// A time-ordered id at `unix_ns` nanoseconds since the Unix epoch (its millisecond,
    /// which always fits 48 bits: `u64::MAX` ns is below 2^48 ms), with the low 80 bits of
    /// `low` below it. See [`TransferId::from_time`].
    pub const fn from_time_ns(unix_ns: u64, low: u128) -> TransferId {
        Self::from_ms(unix_ns / 1_000_000, low)
    }

    /// `unix_ms` (at most 2^48 - 1) above the low 80 bits of `low`.
    const fn from_ms(unix_ms: u64, low: u128) -> TransferId {
        TransferId(((unix_ms as u128) << Self::TIME_SHIFT) | (low & ((1u128 << Self::TIME_SHIFT) - 1)))
    }

    /// The milliseconds since the Unix epoch in the id's top 48 bits (meaningful for
    /// time-ordered ids, see [`TransferId::from_time`]).
    pub const fn time_ms(self) -> u64 {
        // 128 - 80 = 48 bits: always fits.
        (self.0 >> Self::TIME_SHIFT) as u64
    }

    /// [`TransferId::time_ms`] in nanoseconds (as `u128`: 2^48 ms does not fit a `u64` of
    /// nanoseconds).
    pub const fn time_ns(self) -> u128 {
        self.time_ms() as u128 * 1_000_000
    }
}

/// The idempotency window of a [`crate::Ledger`]: how long it remembers transfer ids.
///
/// With a window, transfer ids must be time-ordered ([`TransferId::from_time`]): the
/// ledger compares an id's time (`time_ms`, as nanoseconds) with the time of the event
/// (the caller's clock, which must then be nanoseconds since the Unix epoch). An id older
/// than `past_ns` is answered [`crate::EventResult::IdOlderThanWindow`], whether or not a
/// transfer with it was ever applied — so a retry that comes after the window is never
/// applied a second time — and an id more than `ahead_ns` in the future is answered
/// [`crate::EventResult::IdAheadOfWindow`]. Transfers, closed holds and remembered
/// failures older than the window leave memory (they stay in the journal); open holds
/// and account balances stay. See "Idempotency window" in `docs/ledger.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdWindow {
    /// How far back an id is remembered, in nanoseconds (for example 24 hours).
    pub past_ns: u64,
    /// How far ahead of the event's time an id's time may be, in nanoseconds (for example
    /// a minute of clock skew).
    pub ahead_ns: u64,
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! flags {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $flag:ident = $bit:expr,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u16);

        impl $name {
            /// No flag.
            pub const NONE: $name = $name(0);
            $($(#[$fdoc])* pub const $flag: $name = $name(1 << $bit);)*
            /// Every defined flag; other bits are reserved.
            pub const ALL: $name = $name(0 $(| (1 << $bit))*);

            /// Whether every flag of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether a bit outside the defined flags is set.
            pub const fn has_reserved(self) -> bool {
                self.0 & !Self::ALL.0 != 0
            }
        }

        impl BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
    };
}

flags! {
    /// Flags of an account.
    AccountFlags {
        /// The event is linked with the next one of the batch: they succeed or fail together.
        LINKED = 0,
        /// Debits (pending and posted) may never exceed posted credits: a customer
        /// balance that cannot go below zero. Checked when a transfer or hold is created.
        DEBITS_MUST_NOT_EXCEED_CREDITS = 1,
        /// Credits (pending and posted) may never exceed posted debits.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 2,
    }
}

flags! {
    /// Flags of a transfer.
    TransferFlags {
        /// Linked with the next event of the batch: they succeed or fail together.
        LINKED = 0,
        /// A hold: the amount is reserved (pending) until posted, voided or expired.
        PENDING = 1,
        /// Posts (part of) the pending transfer named by `pending_id`.
        POST_PENDING = 2,
        /// Voids the pending transfer named by `pending_id`.
        VOID_PENDING = 3,
    }
}

/// An account to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its flags.
    pub flags: AccountFlags,
    /// A caller-defined kind (customer balance, revenue, ...).
    pub code: u16,
    /// Caller data, for reference.
    pub user_data: u128,
}

impl Account {
    /// An account with no flags, code 0 and no user data.
    pub const fn new(id: AccountId) -> Account {
        Account {
            id,
            flags: AccountFlags::NONE,
            code: 0,
            user_data: 0,
        }
    }

    /// A customer-balance account: debits can never exceed credits.
    pub const fn balance(id: AccountId) -> Account {
        Account {
            id,
            flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            code: 0,
            user_data: 0,
        }
    }

    /// The same account with `flags` added.
    #[must_use]
    pub const fn with_flags(mut self, flags: AccountFlags) -> Account {
        self.flags = AccountFlags(self.flags.0 | flags.0);
        self
    }

    /// The same account with a code.
    #[must_use]
    pub const fn with_code(mut self, code: u16) -> Account {
        self.code = code;
        self
    }
}

/// A transfer to create: a plain transfer, a pending one (a hold), or the post or void of a
/// pending one. Transfers are immutable once created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Transfer {
    /// Its id, the idempotency key.
    pub id: TransferId,
    /// The account debited. For a post or void, `AccountId(0)` means "as the pending one".
    pub debit_account_id: AccountId,
    /// The account credited. For a post or void, `AccountId(0)` means "as the pending one".
    pub credit_account_id: AccountId,
    /// The amount. A post may post less than was held (the rest is released); a void's
    /// amount is zero or the pending amount.
    pub amount: Credits,
    /// For a post or void: the pending transfer.
    pub pending_id: Option<TransferId>,
    /// For a pending transfer: milliseconds until it expires; 0 never.
    pub timeout_ms: u64,
    /// A caller-defined kind.
    pub code: u16,
    /// Its flags.
    pub flags: TransferFlags,
    /// Caller data, for reference.
    pub user_data: u128,
}

impl Transfer {
    /// A plain transfer of `amount` from `debit` to `credit`.
    pub const fn new(id: TransferId, debit: AccountId, credit: AccountId, amount: Credits) -> Transfer {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            pending_id: None,
            timeout_ms: 0,
            code: 0,
            flags: TransferFlags::NONE,
            user_data: 0,
        }
    }

    /// A pending transfer (a hold) that expires after `timeout_ms` (0: never).
    pub const fn pending(
        id: TransferId,
        debit: AccountId,
        credit: AccountId,
        amount: Credits,
        timeout_ms: u64,
    ) -> Transfer {
        let mut t = Transfer::new(id, debit, credit, amount);
        t.flags = TransferFlags::PENDING;
        t.timeout_ms = timeout_ms;
        t
    }

    /// Posts `amount` of the pending transfer `pending` (at most what it holds); the rest
    /// is released.
    pub const fn post(id: TransferId, pending: TransferId, amount: Credits) -> Transfer {
        let mut t = Transfer::new(id, AccountId(0), AccountId(0), amount);
        t.flags = TransferFlags::POST_PENDING;
        t.pending_id = Some(pending);
        t
    }

    /// Voids the pending transfer `pending`: everything it holds is released.
    pub const fn void(id: TransferId, pending: TransferId) -> Transfer {
        let mut t = Transfer::new(id, AccountId(0), AccountId(0), Credits::ZERO);
        t.flags = TransferFlags::VOID_PENDING;
        t.pending_id = Some(pending);
        t
    }

    /// The same transfer with `flags` added.
    #[must_use]
    pub const fn with_flags(mut self, flags: TransferFlags) -> Transfer {
        self.flags = TransferFlags(self.flags.0 | flags.0);
        self
    }

    /// The same transfer with a code.
    #[must_use]
    pub const fn with_code(mut self, code: u16) -> Transfer {
        self.code = code;
        self
    }

    /// The same transfer with user data.
    #[must_use]
    pub const fn with_user_data(mut self, user_data: u128) -> Transfer {
        self.user_data = user_data;
        self
    }
}

/// One event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Event {
    /// Create an account.
    CreateAccount(Account),
    /// Create a transfer.
    CreateTransfer(Transfer),
    /// Close an account: it takes no new transfers (pending ones can still be posted or
    /// voided).
    CloseAccount {
        /// The account.
        id: AccountId,
        /// Linked with the next event.
        linked: bool,
    },
}

impl Event {
    /// Whether the event is linked with the next one.
    pub const fn is_linked(&self) -> bool {
        match self {
            Event::CreateAccount(a) => a.flags.contains(AccountFlags::LINKED),
            Event::CreateTransfer(t) => t.flags.contains(TransferFlags::LINKED),
            Event::CloseAccount { linked, .. } => *linked,
        }
    }
}

/// What happened to a pending transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PendingStatus {
    /// Still held.
    Pending,
    /// Posted, with the amount posted (the rest was released).
    Posted(Credits),
    /// Voided: everything released.
    Voided,
    /// Expired at its timeout: everything released.
    Expired,
}

/// A transfer as the ledger holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferRecord {
    /// The transfer as the caller sent it (a post or void may leave its accounts zero:
    /// they are the pending transfer's).
    pub transfer: Transfer,
    /// When it was created, in nanoseconds of the ledger's clock.
    pub timestamp_ns: u64,
    /// For a pending transfer, what happened to it.
    pub status: Option<PendingStatus>,
}

/// An account and its balances, as the ledger holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountBalance {
    /// The account as created.
    pub account: Account,
    /// Whether it is closed.
    pub closed: bool,
    /// Debits held by pending transfers.
    pub debits_pending: u128,
    /// Debits posted.
    pub debits_posted: u128,
    /// Credits held by pending transfers.
    pub credits_pending: u128,
    /// Credits posted.
    pub credits_posted: u128,
    /// When it was created.
    pub timestamp_ns: u64,
}

impl AccountBalance {
    /// Posted credits minus posted debits: the balance of a customer account.
    pub fn posted_balance(&self) -> i128 {
        // Every total is kept at or below i128::MAX (checked on every change), so the
        // casts are exact and the difference cannot overflow.
        self.credits_posted.cast_signed() - self.debits_posted.cast_signed()
    }

    /// What can still be debited: posted credits minus posted and pending debits.
    pub fn available(&self) -> i128 {
        // As in `posted_balance`; pending debits are at most the posted credits' range too.
        self.credits_posted.cast_signed() - self.debits_posted.cast_signed() - self.debits_pending.cast_signed()
    }
}
