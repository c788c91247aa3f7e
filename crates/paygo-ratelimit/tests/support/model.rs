//! The reference model of a key's limit, shared by the property tests.

use paygo_ratelimit::{Decision, Quota};

/// The reference: debt in nanoseconds that drains one per nanosecond; a check of `n`
/// units fits if the debt plus `n` intervals is within `burst` intervals.
#[derive(Clone, Copy)]
pub(crate) struct Model {
    pub(crate) debt_ns: u128,
    pub(crate) at_ns: u64,
}

impl Model {
    pub(crate) fn drain(&mut self, now_ns: u64) {
        let elapsed = u128::from(now_ns - self.at_ns);
        self.debt_ns = self.debt_ns.saturating_sub(elapsed);
        self.at_ns = now_ns;
    }

    pub(crate) fn check(&mut self, quota: &Quota, weight: u64, consume: bool) -> Decision {
        let t = u128::from(quota.emission_interval_ns());
        let capacity = u128::from(quota.burst()) * t;
        let cost = u128::from(weight) * t;
        let fits = self.debt_ns + cost <= capacity;
        let debt_after = if fits { self.debt_ns + cost } else { self.debt_ns };
        if fits && consume {
            self.debt_ns = debt_after;
        }
        Decision {
            allowed: fits,
            limit: quota.limit(),
            period_ns: quota.period_ns(),
            remaining: (capacity.saturating_sub(debt_after) / t) as u64,
            reset_ns: debt_after as u64,
            retry_after_ns: (!fits).then(|| (self.debt_ns + cost - capacity) as u64),
        }
    }

    pub(crate) fn adjust(&mut self, quota: &Quota, delta: i64) {
        let amount = u128::from(delta.unsigned_abs()) * u128::from(quota.emission_interval_ns());
        if delta >= 0 {
            self.debt_ns += amount;
        } else {
            self.debt_ns = self.debt_ns.saturating_sub(amount);
        }
    }
}
