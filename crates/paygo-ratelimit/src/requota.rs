//! Runtime quota changes: carrying a key's state into a new quota without breaking the
//! window bound (`docs/ratelimit.md`, "Changing a quota at runtime", has the proof).
//!
//! A key's state is one TAT, which says how far ahead of its quota's sustained rate the
//! key is, in that quota's emission intervals. Read with another interval it can say
//! something false: a greedy key on `per_hour(18_000, 60)` has only its burst of debt
//! (12 s), and `per_hour(18_000, 18_000)` (T = 1 h) would read that as "almost full" and
//! admit 18,000 more in the same hour. So a change converts every key's state.
//!
//! What the conversion may rely on (`docs/ratelimit.md` proves each step): let the
//! class's quota be `(T, b)` and a key's debt `d` at the change, at time `c`. For every
//! earlier quota `(g, b_e)` that the class had and whose interval is at most every later
//! one's (an *entry*; the current quota is one), and every time `s` in that quota's part
//! of the past, the key used at most
//!
//! ```text
//! d / T + (c - s) / g - (b - b_e)          units in [s, c]
//! ```
//!
//! For the current quota's own part this is the GCRA's own bound; each change keeps it
//! true for the entries it keeps, and the entries it drops are covered by the new quota's.
//!
//! What it must give: every window that contains the change holds at most what the most
//! generous of the quotas in force during the window allows (`max_admitted_in_window_ns`).
//! [`Conversion::debt_ns`] is the least debt that does, rounded up (against the key):
//!
//! ```text
//! D = max(0, ceil(d x T' / T) + k x T')     with T', b' the new quota's interval and burst,
//! k = max( b' - b                 if some entry has g <= T'   (the burst grows at the new rate)
//!          b_e - b                for each entry with g > T' )  (the units used, carried over)
//! ```
//!
//! Changing to the same quota changes nothing (`k = 0`, `D = d`).

use crate::quota::Quota;

/// How many entries a class history keeps; beyond, the two fastest merge into one that
/// bounds both (the window promise then holds for windows that reach back that far
/// against a merged quota instead of the two real ones).
pub(crate) const HISTORY_LEN_MAX: usize = 8;

/// A quota of a class's past that bounds what a key may have used: its emission
/// interval and its burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) interval_ns: u64,
    pub(crate) burst: u64,
}

impl Entry {
    fn of(quota: &Quota) -> Entry {
        Entry {
            interval_ns: quota.emission_interval_ns(),
            burst: quota.burst(),
        }
    }
}

/// The entries of a class: its current quota and the earlier quotas whose interval is at
/// most every later one's (at most [`HISTORY_LEN_MAX`] in all, no two equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct History {
    current: Entry,
    past: [Entry; HISTORY_LEN_MAX - 1],
    past_len: usize,
}

impl History {
    pub(crate) fn new(quota: &Quota) -> History {
        History {
            current: Entry::of(quota),
            past: [Entry::of(quota); HISTORY_LEN_MAX - 1],
            past_len: 0,
        }
    }

    pub(crate) fn past(&self) -> &[Entry] {
        &self.past[..self.past_len]
    }

    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.past().iter().copied().chain(std::iter::once(self.current))
    }

    /// The history once `quota` is in force: the entries whose interval is at most the
    /// new one stay, the new quota becomes the current one.
    pub(crate) fn then(&self, quota: &Quota) -> History {
        let mut next = History::new(quota);
        for entry in self.entries() {
            if entry.interval_ns <= next.current.interval_ns {
                next.push(entry);
            }
        }
        next
    }

    /// A history that bounds both (for a key that joins a class with the same current
    /// quota): every entry of either.
    pub(crate) fn union(&self, other: &History) -> History {
        let mut next = *self;
        for entry in other.entries() {
            next.push(entry);
        }
        next
    }

    /// Adds a past entry unless it is already there; when full, merges the two fastest
    /// into the smaller interval and the larger burst, which bounds what either allowed.
    fn push(&mut self, entry: Entry) {
        if entry == self.current || self.past().contains(&entry) {
            return;
        }
        if self.past_len == self.past.len() {
            let (first, second) = self.two_fastest();
            let merged = Entry {
                interval_ns: self.past[first].interval_ns.min(self.past[second].interval_ns),
                burst: self.past[first].burst.max(self.past[second].burst),
            };
            self.past[first] = merged;
            self.past.copy_within(second + 1..self.past_len, second);
            self.past_len -= 1;
        }
        self.past[self.past_len] = entry;
        self.past_len += 1;
    }

    /// The indices (ascending) of the two past entries with the smallest intervals.
    fn two_fastest(&self) -> (usize, usize) {
        let mut order: [usize; HISTORY_LEN_MAX - 1] = std::array::from_fn(|i| i);
        order[..self.past_len].sort_by_key(|&i| self.past[i].interval_ns);
        (order[0].min(order[1]), order[0].max(order[1]))
    }
}

/// A change of a class from its history's current quota to `to`, at `now_ns`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conversion {
    from_interval_ns: u64,
    to_interval_ns: u64,
    /// `k` of the module docs: units of the new interval added to the carried debt.
    offset_units: i128,
    now_ns: u64,
}

impl Conversion {
    pub(crate) fn new(from: &History, to: &Quota, now_ns: u64) -> Conversion {
        let to = Entry::of(to);
        let burst = i128::from(from.current.burst);
        let mut offset_units = i128::MIN;
        for entry in from.entries() {
            let need = if entry.interval_ns <= to.interval_ns {
                i128::from(to.burst) - burst
            } else {
                i128::from(entry.burst) - burst
            };
            offset_units = offset_units.max(need);
        }
        Conversion {
            from_interval_ns: from.current.interval_ns,
            to_interval_ns: to.interval_ns,
            offset_units,
            now_ns,
        }
    }

    /// The debt (ns) under the new quota of a key whose debt under the old one was
    /// `debt_ns` at the change: `max(0, ceil(d x T' / T) + k x T')`, at most `u64::MAX`.
    pub(crate) fn debt_ns(&self, debt_ns: u64) -> u64 {
        let to = u128::from(self.to_interval_ns);
        // d < 2^64 and T' < 2^62: the product fits u128; the quotient is at most d x T'.
        let carried = (u128::from(debt_ns) * to).div_ceil(u128::from(self.from_interval_ns));
        let carried = i128::try_from(carried).unwrap_or(i128::MAX);
        // |k| < 2^64 and T' < 2^62: the product fits i128; the sum saturates.
        let owed = carried.saturating_add(self.offset_units * i128::from(self.to_interval_ns));
        u64::try_from(owed.max(0)).unwrap_or(u64::MAX)
    }

    /// The TAT under the new quota of a key whose effective TAT (its stored TAT, or the
    /// class floor if that is later) was `tat`: `now + debt_ns(max(tat - now, 0))`, or
    /// `tat` unchanged when that is no debt at all (nothing to write). It saturates at
    /// `u64::MAX`, never below `now`: a store caps it at the largest TAT it holds (a key
    /// there is never admitted again: every check of it overflows), which is at least any
    /// time it checks at.
    pub(crate) fn tat(&self, tat: u64) -> u64 {
        let debt = self.debt_ns(tat.saturating_sub(self.now_ns));
        if debt == 0 {
            return tat.min(self.now_ns);
        }
        self.now_ns.saturating_add(debt)
    }

    /// For a class sweep: the new TAT of a key stored with `tat` in a class whose floor
    /// was `floor`: [`Conversion::tat`] of its effective TAT, and at least the new floor
    /// (so that a store's fast path, which reads only held keys, never needs the floor:
    /// a key stored later is stored through its slow path, which applies it). A full key
    /// below both floors is left alone.
    pub(crate) fn swept_tat(&self, tat: u64, floor: u64) -> u64 {
        let converted = if tat <= self.now_ns {
            tat
        } else {
            self.tat(tat.max(floor))
        };
        converted.max(self.floor(floor))
    }

    /// The class floor after the change: the converted old floor (a full key's debt is
    /// 0), or 0 when that is no debt.
    pub(crate) fn floor(&self, floor: u64) -> u64 {
        let converted = self.tat(floor.max(self.now_ns));
        if converted > self.now_ns { converted } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::NS_PER_HOUR;

    fn q(limit: u64, burst: u64) -> Quota {
        Quota::per_hour(limit, burst).unwrap()
    }

    #[test]
    fn the_issues_raise_charges_the_old_usage_in_the_new_units() {
        let (a, b) = (q(18_000, 60), q(18_000, 180));
        let c = Conversion::new(&History::new(&a), &b, NS_PER_HOUR);
        // A fresh or full key: its new 120 units of burst fill at the new rate.
        assert_eq!(c.debt_ns(0), 120 * b.emission_interval_ns());
        // A greedy key with its whole old burst owed owes the whole new one.
        assert_eq!(c.debt_ns(a.capacity_ns()), b.capacity_ns());
        // Lowering it back carries the used units over (T falls: no burst term).
        let back = Conversion::new(&History::new(&a).then(&b), &a, 0);
        assert_eq!(back.debt_ns(b.capacity_ns()), 180 * a.emission_interval_ns());
        // The same quota changes nothing, also after a raise.
        assert_eq!(Conversion::new(&History::new(&a), &a, 0).debt_ns(12_345), 12_345);
        let raised = History::new(&a).then(&b);
        assert_eq!(Conversion::new(&raised, &b, 0).debt_ns(12_345), 12_345);
        // A second raise charges only its own difference.
        let again = Conversion::new(&raised, &q(18_000, 240), 0);
        assert_eq!(again.debt_ns(0), 60 * q(18_000, 240).emission_interval_ns());
    }

    #[test]
    fn histories_keep_the_entries_no_later_quota_undercuts_and_stay_short() {
        let fast = q(36_000, 600);
        let slow = q(18_000, 60);
        let h = History::new(&fast).then(&slow);
        assert_eq!(h.past(), &[Entry::of(&fast)]);
        // A faster quota than every entry drops them all.
        assert!(h.then(&q(100_000, 10)).past().is_empty());
        // Back to a quota already there: no duplicate.
        assert_eq!(h.then(&fast).then(&slow).past(), &[Entry::of(&fast)]);
        // Many slower and slower quotas: the list stays bounded.
        let mut h = History::new(&q(1_000_000, 1_000));
        for i in 1..40u64 {
            h = h.then(&q(1_000_000 - i * 20_000, 1_000 - i * 20));
        }
        assert_eq!(h.past().len(), HISTORY_LEN_MAX - 1);
    }

    proptest::proptest! {
        /// However many quotas a class goes through, every entry a history without a
        /// length limit would keep is bounded by one the kept history has (an interval no
        /// longer and a burst no smaller): merging only ever makes the history more
        /// generous. The reference keeps every entry with `then`'s own rule.
        #[test]
        fn a_bounded_history_bounds_every_entry_an_unbounded_one_keeps(
            quotas in proptest::collection::vec((1u64..=40, 1u64..=40), 1..40),
        ) {
            let quota = |&(limit, burst): &(u64, u64)| Quota::per_second(limit, burst.min(limit)).unwrap();
            let mut history = History::new(&quota(&quotas[0]));
            let mut unbounded = vec![Entry::of(&quota(&quotas[0]))];
            for q in &quotas[1..] {
                let q = quota(q);
                history = history.then(&q);
                let new = Entry::of(&q);
                unbounded.retain(|e| e.interval_ns <= new.interval_ns && *e != new);
                unbounded.push(new);
                proptest::prop_assert!(history.past().len() < HISTORY_LEN_MAX);
                proptest::prop_assert_eq!(history.current, new);
                for e in &unbounded {
                    proptest::prop_assert!(
                        history.entries().any(|k| k.interval_ns <= e.interval_ns && k.burst >= e.burst),
                        "{e:?} is bounded by no entry of {history:?}"
                    );
                }
            }
        }
    }
}
