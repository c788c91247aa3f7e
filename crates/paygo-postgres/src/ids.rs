//! Conversions between paygo's values and the database's columns: u128 ids as uuid, u64
//! nanoseconds as bigint (checked), credits as bigint.

use paygo_billing::BillingError;
use uuid::Uuid;

/// A u128 id as a uuid: the big-endian bytes, so that uuid order is numeric order.
pub(crate) fn uuid(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

/// A uuid column as the u128 id it holds.
pub(crate) fn id(u: Uuid) -> u128 {
    u.as_u128()
}

/// Nanoseconds as a bigint: times until the year 2262 fit.
pub(crate) fn ns(at_ns: u64) -> Result<i64, BillingError> {
    i64::try_from(at_ns).map_err(|_| BillingError::Corrupt {
        reason: format!("time {at_ns} ns is beyond what a bigint holds (the year 2262)"),
    })
}

/// A bigint of nanoseconds read back.
pub(crate) fn ns_back(at_ns: i64) -> Result<u64, BillingError> {
    u64::try_from(at_ns).map_err(|_| BillingError::Corrupt {
        reason: format!("a stored time of {at_ns} ns is negative"),
    })
}
