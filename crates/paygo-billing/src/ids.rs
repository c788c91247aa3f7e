//! Typed ids: a customer, a hold, a top-up, a payment request, a bonus grant. Each is the
//! caller's 128-bit id (a `UUID` or `ULID` read as a `u128`; time-ordered when the billing
//! layer has an idempotency window), wrapped so that two of them cannot be swapped.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u128);

        impl $name {
            /// The id as a number.
            pub const fn get(self) -> u128 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$name> for u128 {
            fn from(id: $name) -> u128 {
                id.0
            }
        }

        impl From<u128> for $name {
            fn from(id: u128) -> $name {
                $name(id)
            }
        }
    };
}

id!(
    /// A customer (its balance account in the ledger has this id): `1 ..= 2^127 - 1`.
    CustomerId
);
id!(
    /// A hold: the id of the call it is for (a retry of the call sends the same one).
    HoldId
);
id!(
    /// A top-up: the payment provider's id of the payment, so that a redelivered
    /// notification credits nothing twice.
    TopUpId
);
id!(
    /// An auto top-up payment request, emitted by the billing layer; the payment's outcome
    /// is reported against it.
    RequestId
);
id!(
    /// A bonus grant.
    GrantId
);
id!(
    /// A payment reversal (a chargeback, or a dispute lost): the payment provider's id of
    /// the dispute.
    ReversalId
);
