//! Holds before a call, captures after it, releases.

use paygo_credits::{Credits, ExactCredits, RemainderCarrier};
use paygo_ledger::{AccountId, Event, EventResult, Transfer, TransferId};

use crate::chart::{REVENUE, codes};
use crate::command::{AmountRule, Command, Receipt, Refusal, Reply};
use crate::ids::CustomerId;
use crate::machine::{Billing, Hold, HoldStatus};

impl Billing {
    pub(crate) fn hold_now(
        &mut self,
        now_ns: u64,
        id: u128,
        customer: u128,
        amount: Credits,
        timeout_ms: u64,
    ) -> Reply {
        let state = self.customers.get(&customer).ok_or(Refusal::UnknownAccount)?;
        if state.arrears > Credits::ZERO {
            return Err(Refusal::AccountInArrears { arrears: state.arrears });
        }
        if amount <= Credits::ZERO {
            return Err(Refusal::InvalidAmount(AmountRule::HoldNotPositive));
        }
        if timeout_ms == 0 || timeout_ms > self.config.hold_timeout_max_ms {
            return Err(Refusal::InvalidTimeout);
        }
        // Spend order: bonus lots first, soonest expiry first, then oldest; then paid.
        let mut sources: Vec<(u64, u64, AccountId)> = state
            .lots
            .iter()
            .filter(|lot| lot.expires_at_ns > now_ns)
            .map(|lot| (lot.expires_at_ns, lot.granted_at_ns, lot.account))
            .collect();
        sources.sort_unstable();
        let mut left = i128::from(amount.get());
        let mut plan: Vec<(AccountId, Credits)> = Vec::new();
        for account in sources.iter().map(|s| s.2).chain(std::iter::once(AccountId(customer))) {
            if left == 0 {
                break;
            }
            let take = self.available(account).min(left);
            if take > 0 {
                // `take` is at most `left`, which started as an i64.
                plan.push((account, Credits::new(take as i64)));
                left -= take;
            }
        }
        if left > 0 {
            return Err(Refusal::InsufficientCredits);
        }
        let mut events = Vec::with_capacity(plan.len());
        let mut parts = Vec::with_capacity(plan.len());
        for (source, credits) in &plan {
            let tid = self.next_transfer_id(now_ns);
            let t = Transfer::pending(tid, *source, REVENUE, *credits, timeout_ms)
                .with_code(codes::USAGE)
                .with_user_data(id);
            events.push(Event::CreateTransfer(t));
            parts.push((tid, *source, *credits));
        }
        if let Some(bad) = self.apply_chain(now_ns, &mut events) {
            return Err(if bad == EventResult::ExceedsCredits {
                Refusal::InsufficientCredits
            } else {
                Refusal::Ledger(bad)
            });
        }
        self.holds.insert(
            id,
            Hold {
                customer,
                amount,
                parts,
                status: HoldStatus::Open,
                reply: None,
            },
        );
        Ok(Receipt::Held { amount })
    }

    pub(crate) fn capture_now(
        &mut self,
        now_ns: u64,
        command: &Command,
        id: u128,
        amount: Credits,
        shortfall: Credits,
    ) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        if let Some(stored) = &hold.reply {
            let (first, reply) = &**stored;
            return if first == command {
                *reply
            } else {
                Err(match hold.status {
                    HoldStatus::Released => Refusal::HoldReleased,
                    _ => Refusal::HoldCaptured,
                })
            };
        }
        if amount < Credits::ZERO {
            return Err(Refusal::InvalidAmount(AmountRule::CaptureNegative));
        }
        if amount > hold.amount {
            return Err(Refusal::CaptureExceedsHold {
                held: hold.amount,
                requested: amount,
            });
        }
        let customer = hold.customer;
        let held_total = hold.amount;
        let sweep = self.touches_expired_lot(&hold.parts);
        let mut left = amount;
        let mut events = Vec::with_capacity(hold.parts.len());
        for (pending, _, held) in &hold.parts {
            let take = if left < *held { left } else { *held };
            left = Credits::new(left.get() - take.get());
            // `next_transfer_id()` would borrow all of `self` while `hold` is borrowed.
            let tid = TransferId(self.mint(now_ns, self.next_transfer));
            self.next_transfer += 1;
            let t = if take > Credits::ZERO {
                Transfer::post(tid, *pending, take)
            } else {
                Transfer::void(tid, *pending)
            }
            .with_code(codes::USAGE)
            .with_user_data(id);
            events.push(Event::CreateTransfer(t));
        }
        let failure = self.apply_chain(now_ns, &mut events);
        // Credits released back to an expired lot are not spendable: sweep them before the
        // auto top-up rule looks at the balance.
        if sweep {
            self.sweep_expired(now_ns);
        }
        let reply = match failure {
            None => {
                let auto_top_up = self.decide_top_up(now_ns, customer);
                let released = Credits::new(held_total.get() - amount.get());
                Ok(Receipt::Captured {
                    charged: amount,
                    released,
                    shortfall,
                    auto_top_up,
                })
            }
            // With a window, an expired hold's pending transfers may be forgotten already.
            Some(EventResult::PendingTransferExpired | EventResult::PendingIdOlderThanWindow) => {
                Err(Refusal::HoldExpired)
            }
            Some(other) => Err(Refusal::Ledger(other)),
        };
        if let Some(h) = self.holds.get_mut(&id) {
            // The reply is kept (for retries) only once the hold is final; after another
            // refusal the hold stays open and can still be captured or released.
            let status = match reply {
                Ok(_) => Some(HoldStatus::Captured),
                Err(Refusal::HoldExpired) => Some(HoldStatus::Released),
                Err(_) => None,
            };
            if let Some(status) = status {
                h.status = status;
                h.reply = Some(Box::new((*command, reply)));
            }
        }
        reply
    }

    pub(crate) fn capture_cost_now(&mut self, now_ns: u64, command: &Command, id: u128, cost: ExactCredits) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        let (customer, held_credits, replayed) = (hold.customer, hold.amount, hold.reply.is_some());
        if replayed {
            // A retry answers as the first time; a different body is refused there.
            return self.capture_now(now_ns, command, id, Credits::ZERO, Credits::ZERO);
        }
        if cost.get().is_sign_negative() && !cost.get().is_zero() {
            return Err(Refusal::InvalidAmount(AmountRule::CostNegative));
        }
        let state = self.customers.get(&customer);
        let mut carrier = state.map(|c| c.carrier).unwrap_or_default();
        let owed = carrier
            .charge(cost)
            .map_err(|_| Refusal::InvalidAmount(AmountRule::CostOutOfRange))?;
        // Above the hold: the hold is charged, never more, and the rest is recorded.
        let (charged, shortfall) = if owed <= held_credits {
            (owed, Credits::ZERO)
        } else {
            (held_credits, Credits::new(owed.get() - held_credits.get()))
        };
        let uncollected = state
            .map_or(Credits::ZERO, |c| c.uncollected)
            .get()
            .checked_add(shortfall.get())
            .ok_or(Refusal::InvalidAmount(AmountRule::UncollectedOutOfRange))?;
        let reply = self.capture_now(now_ns, command, id, charged, shortfall);
        if matches!(reply, Ok(Receipt::Captured { .. }))
            && let Some(state) = self.customers.get_mut(&customer)
        {
            state.carrier = carrier;
            state.uncollected = Credits::new(uncollected);
        }
        reply
    }

    pub(crate) fn release_now(&mut self, now_ns: u64, command: &Command, id: u128) -> Reply {
        let hold = self.holds.get(&id).ok_or(Refusal::UnknownHold)?;
        if let Some(stored) = &hold.reply {
            let (first, reply) = &**stored;
            return if first == command {
                *reply
            } else if hold.status == HoldStatus::Captured {
                Err(Refusal::HoldCaptured)
            } else {
                Ok(Receipt::Released)
            };
        }
        let sweep = self.touches_expired_lot(&hold.parts);
        let mut events = Vec::with_capacity(hold.parts.len());
        for (pending, _, _) in &hold.parts {
            // `next_transfer_id()` would borrow all of `self` while `hold` is borrowed.
            let t = Transfer::void(TransferId(self.mint(now_ns, self.next_transfer)), *pending)
                .with_code(codes::USAGE)
                .with_user_data(id);
            self.next_transfer += 1;
            events.push(Event::CreateTransfer(t));
        }
        let reply = match self.apply_chain(now_ns, &mut events) {
            // A hold that expired is released already (with a window, its pending
            // transfers may be forgotten already).
            None | Some(EventResult::PendingTransferExpired | EventResult::PendingIdOlderThanWindow) => {
                Ok(Receipt::Released)
            }
            Some(other) => Err(Refusal::Ledger(other)),
        };
        // Credits released back to an expired lot go to breakage at once.
        if sweep {
            self.sweep_expired(now_ns);
        }
        if let Some(h) = self.holds.get_mut(&id)
            && reply.is_ok()
        {
            h.status = HoldStatus::Released;
            h.reply = Some(Box::new((*command, reply)));
        }
        reply
    }

    /// Whether a hold drew on a lot that has expired: what it gives back must then be
    /// swept to breakage (applying transfers never changes the set of expired lots, so
    /// this can be asked before they are applied).
    pub(crate) fn touches_expired_lot(&self, parts: &[(TransferId, AccountId, Credits)]) -> bool {
        parts.iter().any(|(_, source, _)| self.expired_lots.contains(&source.0))
    }

    /// Credits a customer owed by exact cost beyond its holds and was never charged: the
    /// sum of the `shortfall`s of its captures (see [`Command::CaptureCost`]).
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn uncollected(&self, customer: CustomerId) -> Result<Credits, Refusal> {
        self.customers
            .get(&customer.0)
            .map(|c| c.uncollected)
            .ok_or(Refusal::UnknownAccount)
    }

    /// The customer's remainder carrier (the exact credits owed but not yet charged).
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn carrier(&self, customer: CustomerId) -> Result<RemainderCarrier, Refusal> {
        self.customers
            .get(&customer.0)
            .map(|c| c.carrier)
            .ok_or(Refusal::UnknownAccount)
    }
}
