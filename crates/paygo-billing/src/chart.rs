//! The chart of accounts (`docs/billing.md`): the system accounts and the account and
//! transfer codes.

use paygo_ledger::AccountId;

/// The top-up funding account: credits sold come from here.
pub const FUNDING: AccountId = AccountId(u128::MAX - 1);
/// The usage revenue account: captured holds go here.
pub const REVENUE: AccountId = AccountId(u128::MAX - 2);
/// The breakage account: expired bonus credits go here.
pub const BREAKAGE: AccountId = AccountId(u128::MAX - 3);
/// The promotions account: bonus credits come from here.
pub const PROMOTIONS: AccountId = AccountId(u128::MAX - 4);
/// The receivables account: credits clawed back by a payment reversal that the customer's
/// balance did not cover (arrears) are owed to funding from here, and settled into it.
/// Its balance is minus the arrears of all customers.
pub const RECEIVABLES: AccountId = AccountId(u128::MAX - 5);
/// Bonus lot accounts are numbered from here; customer ids must be below it.
pub const LOT_BASE: u128 = 1 << 127;

/// Account codes of the chart.
pub mod codes {
    /// A customer's paid balance.
    pub const CUSTOMER: u16 = 1;
    /// A bonus lot.
    pub const LOT: u16 = 2;
    /// Top-up funding.
    pub const FUNDING: u16 = 10;
    /// Usage revenue.
    pub const REVENUE: u16 = 11;
    /// Breakage.
    pub const BREAKAGE: u16 = 12;
    /// Promotions.
    pub const PROMOTIONS: u16 = 13;
    /// Receivables.
    pub const RECEIVABLES: u16 = 14;
    /// Transfer code of a top-up.
    pub const TOP_UP: u16 = 1;
    /// Transfer code of usage (holds, posts and voids).
    pub const USAGE: u16 = 2;
    /// Transfer code of a bonus grant.
    pub const BONUS_GRANT: u16 = 3;
    /// Transfer code of a bonus expiry.
    pub const BONUS_EXPIRY: u16 = 4;
    /// Transfer code of a reversal of a top-up (its `user_data` is the top-up's id): all
    /// the credits clawed back, from the customer's balance to funding (what the balance
    /// did not cover came first from receivables: [`ARREARS_RECORDED`]).
    pub const REVERSAL_OF_TOP_UP: u16 = 5;
    /// Transfer code of a reversal of an auto top-up (its `user_data` is the payment
    /// request's id), as [`REVERSAL_OF_TOP_UP`].
    pub const REVERSAL_OF_AUTO_TOP_UP: u16 = 6;
    /// Transfer code of arrears settled, from a customer's balance to receivables (its
    /// `user_data` is the top-up or request id that paid it, or 0 for credits that came
    /// back to the balance from a hold).
    pub const ARREARS_SETTLED: u16 = 7;
    /// Transfer code of arrears recorded by a reversal: from receivables to the customer's
    /// balance, the part of the reversed credits the balance did not cover, so that the
    /// reversal itself moves all of them from the customer (its `user_data` is the
    /// customer's id).
    pub const ARREARS_RECORDED: u16 = 8;
}
