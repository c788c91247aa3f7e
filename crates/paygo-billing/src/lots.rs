//! Bonus lots: grants, spend order, expiry to breakage.

use paygo_credits::Credits;
use paygo_ledger::{Account, AccountId, Event, Transfer};

use crate::chart::{BREAKAGE, LOT_BASE, PROMOTIONS, codes};
use crate::command::{AmountRule, Receipt, Refusal, Reply};
use crate::machine::{Billing, Lot};

impl Billing {
    pub(crate) fn grant_now(&mut self, now_ns: u64, customer: u128, amount: Credits, expires_at_ns: u64) -> Reply {
        if !self.config.bonus_enabled {
            return Err(Refusal::BonusPaused);
        }
        if !self.customers.contains_key(&customer) {
            return Err(Refusal::UnknownAccount);
        }
        if amount <= Credits::ZERO {
            return Err(Refusal::InvalidAmount(AmountRule::BonusNotPositive));
        }
        if expires_at_ns <= now_ns {
            return Err(Refusal::InvalidAmount(AmountRule::BonusExpiryNotFuture));
        }
        let lot = AccountId(LOT_BASE + self.next_lot);
        self.next_lot += 1;
        let account = Account::balance(lot)
            .with_code(codes::LOT)
            .with_flags(paygo_ledger::AccountFlags::LINKED);
        let grant = Transfer::new(self.next_transfer_id(now_ns), PROMOTIONS, lot, amount)
            .with_code(codes::BONUS_GRANT)
            .with_user_data(customer);
        let results = self.apply(now_ns, &[Event::CreateAccount(account), Event::CreateTransfer(grant)]);
        if let Some(bad) = results.iter().find(|r| !r.is_ok()) {
            return Err(Refusal::Ledger(*bad));
        }
        if let Some(state) = self.customers.get_mut(&customer) {
            state.lots.push(Lot {
                account: lot,
                expires_at_ns,
                granted_at_ns: now_ns,
            });
        }
        self.lot_expiries.insert((expires_at_ns, lot.0));
        self.lot_owner.insert(lot.0, customer);
        Ok(Receipt::BonusGranted { lot })
    }

    /// Expires the holds and the lots whose time has come: what is left of a lot goes to
    /// breakage.
    pub(crate) fn sweep(&mut self, now_ns: u64) {
        // An empty batch: the ledger voids the holds whose timeout has passed, so that the
        // balances read below are those of `now_ns`.
        let _ = self.ledger.apply(now_ns, &[]);
        if self.config.id_window.is_some() && self.replies.len() + self.holds.len() >= self.compact_at_len {
            self.compact();
        }
        while let Some(&(at, lot)) = self.lot_expiries.first() {
            if at > now_ns {
                break;
            }
            self.lot_expiries.pop_first();
            self.expired_lots.insert(lot);
        }
        if !self.expired_lots.is_empty() {
            self.sweep_expired(now_ns);
        }
    }

    pub(crate) fn sweep_expired(&mut self, now_ns: u64) {
        let lots: Vec<u128> = self.expired_lots.iter().copied().collect();
        for lot in lots {
            let account = AccountId(lot);
            let available = self.available(account);
            if available > 0 {
                // A lot holds at most what was granted, an i64.
                let t = Transfer::new(
                    self.next_transfer_id(now_ns),
                    account,
                    BREAKAGE,
                    Credits::new(available as i64),
                )
                .with_code(codes::BONUS_EXPIRY);
                let _ = self.apply(now_ns, &[Event::CreateTransfer(t)]);
            }
            let drained = self
                .ledger
                .account(account)
                .is_none_or(|a| a.debits_pending == 0 && a.available() <= 0);
            if drained {
                self.expired_lots.remove(&lot);
                if let Some(owner) = self.lot_owner.remove(&lot)
                    && let Some(state) = self.customers.get_mut(&owner)
                {
                    state.lots.retain(|l| l.account != account);
                }
            }
        }
    }
}
