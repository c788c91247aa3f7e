//! Payment reversals (chargebacks, disputes lost) and the arrears they leave: the credits
//! are clawed back from the paid balance, what it does not cover is owed through
//! receivables, and credits that reach the balance later settle it first.

use paygo_credits::{Credits, Currency, Money, Rounding};
use paygo_ledger::{AccountId, Event, Transfer};

use crate::chart::{FUNDING, RECEIVABLES, codes};
use crate::command::{AmountRule, Receipt, Refusal, Reply};
use crate::ids::CustomerId;
use crate::machine::Billing;
use crate::payment::PaymentRef;

impl Billing {
    /// The credits a reversal of `amount` claws back: the same conversion as a top-up's
    /// (rounded down), with the reversal's own reasons.
    fn reversal_credits(&self, amount: &Money) -> Result<Credits, Refusal> {
        if amount.currency() != Currency::USD {
            return Err(Refusal::InvalidAmount(AmountRule::ReversalNotUsd));
        }
        if !amount.is_rounded().unwrap_or(false) {
            return Err(Refusal::InvalidAmount(AmountRule::ReversalNotWholeCents));
        }
        let credits = self
            .config
            .credit_rate
            .to_credits(amount, Rounding::Down)
            .map_err(|_| Refusal::InvalidAmount(AmountRule::ReversalOutOfRange))?;
        if credits <= Credits::ZERO {
            return Err(Refusal::InvalidAmount(AmountRule::ReversalNotPositive));
        }
        Ok(credits)
    }

    pub(crate) fn reverse_now(&mut self, now_ns: u64, customer: u128, amount: Money, payment: PaymentRef) -> Reply {
        let arrears = self.customers.get(&customer).ok_or(Refusal::UnknownAccount)?.arrears;
        let credits = self.reversal_credits(&amount)?;
        // What the paid balance has available (never what is held for a call in flight).
        let available = self.available(AccountId(customer)).clamp(0, i128::from(credits.get()));
        // At most `credits`, an i64.
        let recovered = Credits::new(available as i64);
        let owed = Credits::new(credits.get() - recovered.get());
        let arrears = arrears
            .get()
            .checked_add(owed.get())
            .map(Credits::new)
            .ok_or(Refusal::InvalidAmount(AmountRule::ArrearsOutOfRange))?;
        let (code, user_data) = match payment {
            PaymentRef::TopUp(id) => (codes::REVERSAL_OF_TOP_UP, id.0),
            PaymentRef::AutoTopUp(id) => (codes::REVERSAL_OF_AUTO_TOP_UP, id.0),
        };
        // The part the balance does not cover comes from receivables first, so that the
        // reversal moves all the credits from the customer's account (and the customer's
        // history shows all of them), in one linked chain.
        let mut events = Vec::with_capacity(2);
        if owed > Credits::ZERO {
            let advance = Transfer::new(self.next_transfer_id(now_ns), RECEIVABLES, AccountId(customer), owed)
                .with_code(codes::ARREARS_RECORDED)
                .with_user_data(customer);
            events.push(Event::CreateTransfer(advance));
        }
        let back = Transfer::new(self.next_transfer_id(now_ns), AccountId(customer), FUNDING, credits)
            .with_code(code)
            .with_user_data(user_data);
        events.push(Event::CreateTransfer(back));
        if let Some(bad) = self.apply_chain(now_ns, &mut events) {
            return Err(Refusal::Ledger(bad));
        }
        self.set_arrears(customer, arrears);
        Ok(Receipt::Reversed {
            credits,
            recovered,
            arrears: owed,
        })
    }

    /// Records a customer's arrears, and whether it is in arrears.
    pub(crate) fn set_arrears(&mut self, customer: u128, arrears: Credits) {
        if let Some(state) = self.customers.get_mut(&customer) {
            state.arrears = arrears;
        }
        if arrears > Credits::ZERO {
            self.in_arrears.insert(customer);
        } else {
            self.in_arrears.remove(&customer);
        }
    }

    /// The transfer that settles `amount` of a customer's arrears from its paid balance,
    /// tagged with the top-up or request that paid it (0: credits that came back from a
    /// hold).
    pub(crate) fn settlement(&mut self, now_ns: u64, customer: u128, amount: Credits, source: u128) -> Event {
        Event::CreateTransfer(
            Transfer::new(self.next_transfer_id(now_ns), AccountId(customer), RECEIVABLES, amount)
                .with_code(codes::ARREARS_SETTLED)
                .with_user_data(source),
        )
    }

    /// Settles the arrears of every customer in arrears from what its paid balance has
    /// available (credits that came back from a hold released, expired or captured below
    /// its amount), so that a customer in arrears never has paid credits available.
    pub(crate) fn settle_arrears(&mut self, now_ns: u64) {
        if self.in_arrears.is_empty() {
            return;
        }
        let owing: Vec<u128> = self.in_arrears.iter().copied().collect();
        for customer in owing {
            let arrears = self.customers.get(&customer).map_or(Credits::ZERO, |c| c.arrears);
            let available = self.available(AccountId(customer)).clamp(0, i128::from(arrears.get()));
            if available == 0 {
                continue;
            }
            // At most the arrears, an i64.
            let settled = Credits::new(available as i64);
            let event = self.settlement(now_ns, customer, settled, 0);
            if self.apply(now_ns, &[event])[0].is_ok() {
                self.set_arrears(customer, Credits::new(arrears.get() - settled.get()));
            }
        }
    }

    /// Credits a customer owes after a payment reversal that its balance did not cover
    /// ([`Command::ReversePayment`](crate::Command::ReversePayment)); while above zero,
    /// holds are refused with [`Refusal::AccountInArrears`]. The sum over all customers
    /// is minus the balance of [`RECEIVABLES`].
    ///
    /// # Errors
    ///
    /// [`Refusal::UnknownAccount`].
    pub fn arrears(&self, customer: CustomerId) -> Result<Credits, Refusal> {
        self.customers
            .get(&customer.0)
            .map(|c| c.arrears)
            .ok_or(Refusal::UnknownAccount)
    }

    /// Reverses a payment (see [`Command::ReversePayment`](crate::Command::ReversePayment)).
    ///
    /// ```
    /// use paygo_billing::{Billing, BillingConfig, CardKind, CustomerId, HoldId, PaymentMethod};
    /// use paygo_billing::{PaymentRef, Receipt, Refusal, ReversalId, TopUpId};
    /// use paygo_credits::{Credits, Money};
    ///
    /// let (mut billing, customer, t) = (Billing::new(BillingConfig::default()), CustomerId(1), 1_000);
    /// billing.open_account(t, customer)?;
    /// let card = PaymentMethod::Card(CardKind::Credit);
    /// billing.top_up(t, TopUpId(7), customer, Money::usd("10.00".parse()?), card)?;
    /// billing.hold(t, HoldId(1), customer, Credits::new(15_000_000), 60_000)?;
    /// billing.capture(t, HoldId(1), Credits::new(15_000_000))?;
    /// // The $10 payment is charged back: 5,000,000 credits are left to claw back.
    /// let reversed = billing.reverse_payment(t, ReversalId(9), customer, Money::usd("10.00".parse()?), PaymentRef::TopUp(TopUpId(7)))?;
    /// let arrears = Credits::new(15_000_000);
    /// assert_eq!(reversed, Receipt::Reversed { credits: Credits::new(20_000_000), recovered: Credits::new(5_000_000), arrears });
    /// assert_eq!(billing.balance(customer)?, Credits::new(-15_000_000));
    /// // No service until a top-up settles the arrears (the API answers 402).
    /// let refused = billing.hold(t, HoldId(2), customer, Credits::new(1), 60_000);
    /// assert_eq!(refused, Err(Refusal::AccountInArrears { arrears }));
    /// billing.top_up(t, TopUpId(8), customer, Money::usd("10.00".parse()?), card)?;
    /// assert_eq!((billing.arrears(customer)?, billing.balance(customer)?), (Credits::ZERO, Credits::new(5_000_000)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The [`Refusal`] of the command.
    pub fn reverse_payment(
        &mut self,
        now_ns: u64,
        id: crate::ids::ReversalId,
        customer: CustomerId,
        amount: Money,
        payment: PaymentRef,
    ) -> Reply {
        self.execute(
            now_ns,
            &crate::Command::ReversePayment {
                id,
                customer,
                amount,
                payment,
            },
        )
    }
}
