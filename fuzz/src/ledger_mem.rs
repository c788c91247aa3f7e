//! A [`Storage`] in memory for the ledger's durable handle: a snapshot and the records
//! after it, handed to [`SharedLedger::with_storage`] exactly as a store on disk would hand
//! them (`paygo_ledger::durable::Loaded`), so that a target reaches the public decoding of
//! snapshots and journal records without the files' framing and checksums in the way.

use std::sync::{Arc, Mutex};

use paygo_billing::{
    AutoTopUpRule, Billing, BillingConfig, CardKind, Command, PaymentMethod, PaymentOutcome, TopUpAmount,
};
use paygo_billing::{CustomerId, GrantId, HoldId, RequestId, TopUpId};
use paygo_ledger::durable::{Durable, Head, Loaded, OpenOptions, Recovery, Storage};
use paygo_ledger::{
    Account, AccountFlags, AccountId, Event, Ledger, LedgerError, ManualClock, SharedLedger, Transfer, TransferFlags,
    TransferId,
};

/// What the storage holds: the snapshot (taken after `at` records) and every record.
#[derive(Debug, Clone, Default)]
pub struct MemData {
    pub snapshot: Option<(u64, Vec<u8>)>,
    pub records: Vec<Vec<u8>>,
}

/// The storage; clones share the data.
#[derive(Debug, Clone, Default)]
pub struct MemStore(pub Arc<Mutex<MemData>>);

impl MemStore {
    pub fn new(state: Vec<u8>, records: Vec<Vec<u8>>) -> MemStore {
        MemStore(Arc::new(Mutex::new(MemData {
            snapshot: Some((0, state)),
            records,
        })))
    }

    /// An independent copy of the data.
    #[must_use]
    pub fn copy(&self) -> MemStore {
        MemStore(Arc::new(Mutex::new(self.data())))
    }

    pub fn data(&self) -> MemData {
        self.0.lock().unwrap().clone()
    }
}

impl Storage for MemStore {
    fn load(&mut self, visit: &mut dyn FnMut(Loaded<'_>) -> Result<(), LedgerError>) -> Result<Recovery, LedgerError> {
        let data = self.0.lock().unwrap();
        let mut recovery = Recovery::default();
        let Some((at, state)) = &data.snapshot else {
            recovery.fresh = true;
            return Ok(recovery);
        };
        let after = data.records.get(usize::try_from(*at).unwrap()..).unwrap_or(&[]);
        let journal_bytes = after.iter().map(|r| r.len() as u64).sum();
        visit(Loaded::Snapshot {
            records: *at,
            state,
            journal_bytes,
        })?;
        for (i, payload) in after.iter().enumerate() {
            visit(Loaded::Record {
                seq: at + i as u64,
                payload,
            })?;
        }
        recovery.snapshot_records = *at;
        recovery.records_replayed = after.len() as u64;
        recovery.head = MemStore::head_of(&data);
        Ok(recovery)
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), LedgerError> {
        self.0.lock().unwrap().records.push(payload.to_vec());
        Ok(())
    }

    fn save_snapshot(&mut self, state: &[u8]) -> Result<(), LedgerError> {
        let mut data = self.0.lock().unwrap();
        let at = data.records.len() as u64;
        data.snapshot = Some((at, state.to_vec()));
        Ok(())
    }

    fn head(&self) -> Head {
        MemStore::head_of(&self.0.lock().unwrap())
    }

    fn bytes_since_snapshot(&self) -> u64 {
        let data = self.0.lock().unwrap();
        let at = data.snapshot.as_ref().map_or(0, |s| s.0);
        data.records
            .iter()
            .skip(usize::try_from(at).unwrap())
            .map(|r| r.len() as u64)
            .sum()
    }
}

impl MemStore {
    fn head_of(data: &MemData) -> Head {
        Head {
            records: data.records.len() as u64,
            hash: [0; 32],
        }
    }
}

/// Options that never snapshot on their own.
pub fn no_auto_snapshot() -> OpenOptions {
    OpenOptions {
        snapshot_journal_bytes: None,
        ..OpenOptions::default()
    }
}

/// A durable handle over `store`, with a manual clock at `now_ns`.
///
/// # Errors
///
/// As [`SharedLedger::with_storage`].
pub fn open<M: Durable>(
    store: &MemStore,
    init: impl FnOnce() -> M,
    now_ns: u64,
) -> Result<SharedLedger<M, ManualClock>, LedgerError> {
    SharedLedger::with_storage(
        Box::new(store.clone()),
        init,
        ManualClock::new(now_ns),
        &no_auto_snapshot(),
    )
}

/// The encoded state of a machine.
pub fn encode<M: Durable>(machine: &M) -> Vec<u8> {
    let mut out = Vec::new();
    machine.encode_state(&mut out).expect("a state with no encoding");
    out
}

/// The encoded state behind a handle.
pub fn encode_shared<M: Durable>(shared: &SharedLedger<M, ManualClock>) -> Vec<u8> {
    shared.read(encode).expect("the machine panicked")
}

/// Checks that a state the engine produced decodes and encodes back to the same bytes:
/// a snapshot of any reachable state can be read back. Returns the decoded machine.
pub fn snapshot_round_trip<M: Durable>(state: &[u8], what: &str) -> M {
    let back = M::decode_state(state, 0).unwrap_or_else(|e| panic!("{what}: a reachable state is refused: {e}"));
    assert_eq!(encode(&back), state, "{what}: the state changes through a snapshot");
    back
}

/// The length of one encoded ledger event.
pub fn event_len() -> usize {
    let mut out = Vec::new();
    Ledger::encode_commands(&[Event::CreateAccount(Account::new(AccountId(1)))], &mut out);
    out.len()
}

/// A small ledger: accounts 1 to 4 (1 and 2 may not go below zero), funded from 4, with
/// a posted, a pending and a voided transfer.
pub fn ledger_events() -> Vec<Event> {
    let pending = |id, amount, timeout_ms| Transfer {
        flags: TransferFlags::PENDING,
        timeout_ms,
        ..Transfer::new(
            TransferId(id),
            AccountId(1),
            AccountId(3),
            paygo_credits::Credits::new(amount),
        )
    };
    vec![
        Event::CreateAccount(Account::balance(AccountId(1))),
        Event::CreateAccount(Account::balance(AccountId(2))),
        Event::CreateAccount(Account {
            flags: AccountFlags::NONE,
            code: 7,
            ..Account::new(AccountId(3))
        }),
        Event::CreateAccount(Account::new(AccountId(4))),
        Event::CreateTransfer(Transfer::new(
            TransferId(10),
            AccountId(4),
            AccountId(1),
            paygo_credits::Credits::new(1_000),
        )),
        Event::CreateTransfer(Transfer::new(
            TransferId(11),
            AccountId(4),
            AccountId(2),
            paygo_credits::Credits::new(500),
        )),
        Event::CreateTransfer(pending(12, 300, 0)),
        Event::CreateTransfer(pending(13, 200, 5_000)),
        Event::CreateTransfer(Transfer {
            flags: TransferFlags::POST_PENDING,
            pending_id: Some(TransferId(12)),
            ..Transfer::new(
                TransferId(14),
                AccountId(0),
                AccountId(0),
                paygo_credits::Credits::new(250),
            )
        }),
        Event::CreateTransfer(Transfer {
            flags: TransferFlags::VOID_PENDING,
            pending_id: Some(TransferId(13)),
            ..Transfer::new(
                TransferId(15),
                AccountId(0),
                AccountId(0),
                paygo_credits::Credits::new(0),
            )
        }),
        Event::CreateTransfer(pending(16, 100, 1)),
    ]
}

/// Billing commands: two customers, top-ups, holds, a capture and a release.
pub fn billing_commands() -> Vec<Command> {
    let usd = |text: &str| paygo_credits::Money::usd(text.parse().unwrap());
    vec![
        Command::OpenAccount {
            customer: CustomerId(1),
        },
        Command::OpenAccount {
            customer: CustomerId(2),
        },
        Command::TopUp {
            id: TopUpId(100),
            customer: CustomerId(1),
            amount: usd("10.00"),
            method: PaymentMethod::PayPal,
        },
        Command::TopUp {
            id: TopUpId(101),
            customer: CustomerId(2),
            amount: usd("0.50"),
            method: PaymentMethod::Crypto,
        },
        Command::Hold {
            id: HoldId(200),
            customer: CustomerId(1),
            amount: paygo_credits::Credits::new(5_000),
            timeout_ms: 60_000,
        },
        Command::Hold {
            id: HoldId(201),
            customer: CustomerId(1),
            amount: paygo_credits::Credits::new(7_000),
            timeout_ms: 1,
        },
        Command::Capture {
            hold: HoldId(200),
            amount: paygo_credits::Credits::new(1_234),
        },
        Command::CaptureCost {
            hold: HoldId(201),
            cost: "1.5".parse().unwrap(),
        },
        Command::Hold {
            id: HoldId(202),
            customer: CustomerId(2),
            amount: paygo_credits::Credits::new(100),
            timeout_ms: 60_000,
        },
        Command::Release { hold: HoldId(202) },
        Command::SetAutoTopUp {
            customer: CustomerId(1),
            rule: Some(AutoTopUpRule {
                enabled: true,
                threshold: paygo_credits::Credits::new(19_990_000),
                amount: TopUpAmount::Fixed(usd("5.00")),
                method: PaymentMethod::Card(CardKind::Credit),
                requests_per_window_max: 2,
                window_ms: 3_600_000,
                backoff_ms: 1_000,
                backoff_max_ms: 60_000,
                monthly_cap: Some(usd("12.00")),
                disable_after_declines: Some(3),
                buyer_tax_id: Some(paygo_billing::Reference::new("DE123456789").unwrap()),
                purchase_order: Some(paygo_billing::Reference::new("PO-2026-0042").unwrap()),
            }),
        },
        Command::Hold {
            id: HoldId(203),
            customer: CustomerId(1),
            amount: paygo_credits::Credits::new(9_000),
            timeout_ms: 60_000,
        },
        Command::Capture {
            hold: HoldId(203),
            amount: paygo_credits::Credits::new(9_000),
        },
        Command::GrantBonus {
            id: GrantId(300),
            customer: CustomerId(2),
            amount: paygo_credits::Credits::new(777),
            expires_at_ns: 5_000_000_000,
        },
        // A chargeback of more than is left: arrears, a refused hold, a top-up that
        // settles part of them.
        Command::ReversePayment {
            id: paygo_billing::ReversalId(400),
            customer: CustomerId(1),
            amount: usd("10.00"),
            payment: paygo_billing::PaymentRef::TopUp(TopUpId(100)),
        },
        Command::Hold {
            id: HoldId(204),
            customer: CustomerId(1),
            amount: paygo_credits::Credits::new(1),
            timeout_ms: 60_000,
        },
        Command::TopUp {
            id: TopUpId(102),
            customer: CustomerId(1),
            amount: usd("0.01"),
            method: PaymentMethod::PayPal,
        },
        Command::ReversePayment {
            id: paygo_billing::ReversalId(401),
            customer: CustomerId(2),
            amount: usd("0.25"),
            payment: paygo_billing::PaymentRef::AutoTopUp(paygo_billing::RequestId(9)),
        },
    ]
}

/// The starting machines of the targets.
pub fn new_billing() -> Billing {
    Billing::new(BillingConfig {
        bonus_enabled: true,
        ..BillingConfig::default()
    })
}

/// A ledger event from a few bytes: small ids, so that events meet the same accounts and
/// transfers.
pub fn gen_event(b: &mut crate::Bytes<'_>) -> Event {
    let op = b.u8();
    let id = u128::from(b.u8());
    let flags = b.u8();
    match op % 4 {
        0 => Event::CreateAccount(Account {
            id: AccountId(id % 8),
            flags: AccountFlags(u16::from(flags) & 0x7),
            code: u16::from(op >> 2),
            user_data: 0,
        }),
        1 => Event::CloseAccount {
            id: AccountId(id % 8),
            linked: flags & 1 == 1,
        },
        _ => {
            let accounts = b.u8();
            let amount = paygo_credits::Credits::new(i64::from(b.u16()) - i64::from(op >> 7) * 100);
            let pending_id = (flags & 0x0c != 0).then(|| TransferId(u128::from(b.u8() % 32)));
            Event::CreateTransfer(Transfer {
                id: TransferId(id % 64),
                debit_account_id: AccountId(u128::from(accounts & 7)),
                credit_account_id: AccountId(u128::from((accounts >> 3) & 7)),
                amount,
                pending_id,
                timeout_ms: u64::from(b.u8() % 4) * 500,
                code: 1,
                flags: TransferFlags(u16::from(flags) & 0xf),
                user_data: 0,
            })
        }
    }
}

/// A billing command from a few bytes, with small ids.
pub fn gen_command(b: &mut crate::Bytes<'_>) -> Command {
    let op = b.u8();
    let customer = u128::from(b.u8() % 4);
    let id = u128::from(b.u8() % 16) + 1_000;
    let method = match b.u8() % 6 {
        0 => PaymentMethod::Card(CardKind::Credit),
        1 => PaymentMethod::Card(CardKind::Debit),
        2 => PaymentMethod::Card(CardKind::Prepaid),
        3 => PaymentMethod::PayPal,
        4 => PaymentMethod::Crypto,
        _ => PaymentMethod::GiftCard,
    };
    let amount = paygo_credits::Credits::new(i64::from(b.u16()));
    match op % 11 {
        0 => Command::OpenAccount {
            customer: CustomerId(customer),
        },
        1 => Command::TopUp {
            id: TopUpId(id),
            customer: CustomerId(customer),
            amount: paygo_credits::Money::usd(rust_decimal::Decimal::new(i64::from(b.u16()), 2)),
            method,
        },
        2 | 3 => Command::Hold {
            id: HoldId(id),
            customer: CustomerId(customer),
            amount,
            timeout_ms: u64::from(b.u8()) * 100,
        },
        4 => Command::Capture {
            hold: HoldId(id),
            amount,
        },
        5 => Command::CaptureCost {
            hold: HoldId(id),
            cost: paygo_credits::ExactCredits::new(rust_decimal::Decimal::new(i64::from(b.u32()), 3)),
        },
        6 => Command::Release { hold: HoldId(id) },
        7 => Command::GrantBonus {
            id: GrantId(id),
            customer: CustomerId(customer),
            amount,
            expires_at_ns: u64::from(b.u16()) * 1_000_000,
        },
        8 => {
            let flags = b.u8();
            let cap_cents = 500 + i64::from(b.u16());
            let declines = u32::from(b.u8() % 4); // 0 is refused
            Command::SetAutoTopUp {
                customer: CustomerId(customer),
                rule: (flags & 1 == 1).then(|| AutoTopUpRule {
                    enabled: true,
                    threshold: amount,
                    amount: TopUpAmount::Fixed(paygo_credits::Money::usd(rust_decimal::Decimal::new(500, 2))),
                    method,
                    requests_per_window_max: 2,
                    window_ms: 60_000,
                    backoff_ms: 1_000,
                    backoff_max_ms: 8_000,
                    monthly_cap: (flags & 2 != 0)
                        .then(|| paygo_credits::Money::usd(rust_decimal::Decimal::new(cap_cents, 2))),
                    disable_after_declines: (flags & 4 != 0).then_some(declines),
                    buyer_tax_id: (flags & 8 != 0).then(|| paygo_billing::Reference::new("DE123456789").unwrap()),
                    purchase_order: (flags & 16 != 0).then(|| paygo_billing::Reference::new("PO 42").unwrap()),
                }),
            }
        }
        9 => Command::ReportPayment {
            request: RequestId(u128::from(b.u8() % 8)),
            outcome: if b.u8() & 1 == 0 {
                PaymentOutcome::Succeeded
            } else {
                PaymentOutcome::Declined
            },
        },
        _ => Command::ReversePayment {
            id: paygo_billing::ReversalId(id),
            customer: CustomerId(customer),
            amount: paygo_credits::Money::usd(rust_decimal::Decimal::new(i64::from(b.u16()), 2)),
            payment: if b.u8() & 1 == 0 {
                paygo_billing::PaymentRef::TopUp(TopUpId(id))
            } else {
                paygo_billing::PaymentRef::AutoTopUp(RequestId(id))
            },
        },
    }
}
