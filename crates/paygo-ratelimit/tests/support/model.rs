//! The reference model of a key's limit, shared by the property tests.

#![allow(dead_code)] // each test file uses a part

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
        self.adjust_above(quota, delta, 0);
    }

    /// An adjustment in a class whose floor is `floor_ns` of debt now: a give-back
    /// stops there (it gives back the key's own units, not what every key owes).
    pub(crate) fn adjust_above(&mut self, quota: &Quota, delta: i64, floor_ns: u128) {
        let amount = u128::from(delta.unsigned_abs()) * u128::from(quota.emission_interval_ns());
        if delta >= 0 {
            self.debt_ns = self.debt_ns.max(floor_ns) + amount;
        } else {
            self.debt_ns = self.debt_ns.saturating_sub(amount).max(floor_ns);
        }
    }
}

/// The quotas a class of keys has had, as whole timelines (oldest first, each ending
/// with the class's current quota): one for a class that has only ever been itself, more
/// once keys with other pasts joined it. The library keeps the same information
/// incrementally, as a short list of entries; this keeps everything and recomputes.
#[derive(Clone, Debug)]
pub(crate) struct Timelines(pub(crate) Vec<Vec<Quota>>);

impl Timelines {
    pub(crate) fn new(quota: Quota) -> Self {
        Timelines(vec![vec![quota]])
    }

    pub(crate) fn current(&self) -> Quota {
        *self.0[0].last().unwrap()
    }

    /// Every timeline goes on with `quota`.
    pub(crate) fn then(&self, quota: Quota) -> Self {
        Timelines(
            self.0
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    t.push(quota);
                    t
                })
                .collect(),
        )
    }

    pub(crate) fn join(&mut self, other: &Timelines) {
        self.0.extend(other.0.iter().cloned());
    }

    /// The quotas no later quota of their timeline undercuts (interval at most every
    /// later one's), as (interval, burst).
    fn entries(&self) -> Vec<(u128, i128)> {
        let mut entries = Vec::new();
        for timeline in &self.0 {
            for (i, q) in timeline.iter().enumerate() {
                let t = q.emission_interval_ns();
                if timeline[i + 1..].iter().all(|later| t <= later.emission_interval_ns()) {
                    entries.push((u128::from(t), i128::from(q.burst())));
                }
            }
        }
        entries
    }

    /// The debt under `to` of a key whose debt was `debt_ns` under this class's current
    /// quota (docs/ratelimit.md, "Changing a quota at runtime").
    pub(crate) fn converted(&self, debt_ns: u128, to: &Quota) -> u128 {
        let from = self.current();
        let (t_from, b_from) = (u128::from(from.emission_interval_ns()), i128::from(from.burst()));
        let (t_to, b_to) = (u128::from(to.emission_interval_ns()), i128::from(to.burst()));
        let k = self
            .entries()
            .into_iter()
            .map(|(t, b)| if t <= t_to { b_to - b_from } else { b - b_from })
            .max()
            .unwrap();
        // Test numbers are small: every value here fits both types.
        let carried = i128::try_from((debt_ns * t_to).div_ceil(t_from)).unwrap();
        u128::try_from((carried + k * i128::try_from(t_to).unwrap()).max(0)).unwrap()
    }
}
