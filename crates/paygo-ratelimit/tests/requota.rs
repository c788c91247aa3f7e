//! Quota changes at runtime (issue 14, point 7): a change carries every key's state into
//! the new quota, so that a window that contains changes admits at most what the most
//! generous quota in force during it allows. The two cases, a property test of
//! every store path against the reference model and the window bound, and a check that
//! races with a change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use paygo_ratelimit::{
    Clock, DirectLimiter, FlatStore, FlatStoreOptions, ManualClock, MemoryStore, MemoryStoreOptions, MultiLimiter,
    NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND, Plan, Policy, PolicyName, Quota, QuotaOptions, RateLimiter, Store, Unit,
};
use proptest::prelude::*;

#[path = "support/model.rs"]
mod model;
use model::{Model, Timelines};

/// Where failing cases are kept (committed, replayed first).
const REGRESSIONS: &str = "tests/requota.proptest-regressions";

fn policy(quota: Quota) -> Policy {
    Policy {
        name: PolicyName::new("p").unwrap(),
        unit: Unit::Requests,
        quota,
    }
}

/// The most units admitted in any half-open window `[t, t + window_ns)`.
fn max_in_window(admitted: &[(u64, u64)], window_ns: u64) -> u64 {
    let (mut best, mut end, mut sum) = (0, 0, 0);
    for start in 0..admitted.len() {
        while end < admitted.len() && admitted[end].0 < admitted[start].0 + window_ns {
            sum += admitted[end].1;
            end += 1;
        }
        best = best.max(sum);
        sum -= admitted[start].1;
    }
    best
}

/// What each kind of limiter needs for the greedy client below.
trait Greedy {
    fn check_one(&self) -> paygo_ratelimit::Decision;
    fn change(&self, quota: Quota);
}

impl<S: Store<u64>> Greedy for RateLimiter<u64, ManualClock, S> {
    fn check_one(&self) -> paygo_ratelimit::Decision {
        self.check(&1).unwrap()
    }
    fn change(&self, quota: Quota) {
        self.set_quota(quota).unwrap();
    }
}

/// A key with a custom contract: the change is `set_key_quota`.
struct Contract(RateLimiter<u64, ManualClock>);

impl Greedy for Contract {
    fn check_one(&self) -> paygo_ratelimit::Decision {
        self.0.check(&1).unwrap()
    }
    fn change(&self, quota: Quota) {
        self.0.set_key_quota(1, quota).unwrap();
    }
}

impl Greedy for DirectLimiter<ManualClock> {
    fn check_one(&self) -> paygo_ratelimit::Decision {
        self.check().unwrap()
    }
    fn change(&self, quota: Quota) {
        self.set_quota(quota);
    }
}

/// A client that sends whenever it may (waiting exactly its retry-after) for three
/// hours, with the quota changed to `to` at `change_at_ns`; the most it got in any
/// rolling hour.
fn greedy_rolling_hour_max(limiter: &impl Greedy, clock: &ManualClock, to: Quota, change_at_ns: u64) -> u64 {
    let mut admitted = Vec::new();
    let mut changed = false;
    while clock.now_ns() < 3 * NS_PER_HOUR {
        if !changed && clock.now_ns() >= change_at_ns {
            limiter.change(to);
            changed = true;
        }
        let d = limiter.check_one();
        if d.allowed {
            admitted.push((clock.now_ns(), 1));
        } else {
            let mut wait = d.retry_after_ns.unwrap();
            if !changed {
                wait = wait.min(change_at_ns - clock.now_ns());
            }
            clock.advance_ns(wait.max(1));
        }
    }
    max_in_window(&admitted, NS_PER_HOUR)
}

/// The cases: a greedy key on `per_hour(18_000, 60)` whose burst is raised to
/// 18,000 or to 180 late in its first hour. Before the fix the first admitted 27,030 to
/// 35,995 in one rolling hour, the second 18,061 to 18,121 (every store). Now no rolling
/// hour holds more than 18,000, however late the change, through every path that can
/// change a quota (now: at most 9,030 to 18,000 and 17,940 to 18,000 by the moment).
#[test]
fn raising_the_burst_late_in_the_hour_keeps_18000_per_rolling_hour() {
    let from = Quota::pay_as_you_go();
    let moments = [30, 50, 55, 59].map(|m| m * NS_PER_MINUTE).into_iter().chain([
        59 * NS_PER_MINUTE + 59 * NS_PER_SECOND,
        NS_PER_HOUR - 1,
        NS_PER_HOUR + 17 * NS_PER_MINUTE,
    ]);
    for to in [
        Quota::per_hour(18_000, 18_000).unwrap(),
        Quota::per_hour(18_000, 180).unwrap(),
    ] {
        for at in moments.clone() {
            let clock = ManualClock::new(0);
            let memory: RateLimiter<u64, ManualClock> =
                RateLimiter::with_clock_and_store(policy(from), clock.clone(), MemoryStore::new());
            let memory = greedy_rolling_hour_max(&memory, &clock, to, at);

            let clock = ManualClock::new(0);
            let flat: RateLimiter<u64, ManualClock, FlatStore<u64>> =
                RateLimiter::with_clock_and_store(policy(from), clock.clone(), FlatStore::new());
            let flat = greedy_rolling_hour_max(&flat, &clock, to, at);

            let clock = ManualClock::new(0);
            let contract = Contract(RateLimiter::with_clock_and_store(
                policy(from),
                clock.clone(),
                MemoryStore::new(),
            ));
            let contract = greedy_rolling_hour_max(&contract, &clock, to, at);

            let clock = ManualClock::new(0);
            let direct = DirectLimiter::with_clock(from, clock.clone());
            let direct = greedy_rolling_hour_max(&direct, &clock, to, at);

            for (path, most) in [
                ("memory", memory),
                ("flat", flat),
                ("contract", contract),
                ("direct", direct),
            ] {
                assert!(
                    most <= 18_000,
                    "burst 60 -> {} at {at} ns ({path}): {most} in one rolling hour",
                    to.burst()
                );
            }
            assert_eq!((memory, flat, contract), (direct, direct, direct));
            // Nor is the key starved by a raise that keeps the rate: it keeps about its
            // sustained rate (17,940 to 18,000). A burst of 18,000 with the promise has
            // T = 1 h: after it, one request an hour, which is that quota, not the change.
            if to.burst() == 180 {
                assert!(memory >= 17_940, "{memory}");
            }
        }
    }
}

/// The raise is usable as the old usage ages out: a key that sent nothing for a while
/// gets its new burst in full; the extra 120 of the raise to 180 fill at the new rate
/// (24.2 s) for a key the limiter cannot tell from one that used the old quota fully.
#[test]
fn a_raised_burst_fills_at_the_new_rate_then_is_whole() {
    let clock = ManualClock::new(NS_PER_HOUR);
    let limiter: RateLimiter<u64, ManualClock> =
        RateLimiter::with_clock_and_store(policy(Quota::pay_as_you_go()), clock.clone(), MemoryStore::new());
    let raised = Quota::per_hour(18_000, 180).unwrap();
    limiter.set_quota(raised).unwrap();
    let t = raised.emission_interval_ns();
    assert_eq!(limiter.peek_n(&7, 0).unwrap().remaining, 60);
    clock.advance_ns(120 * t - 1);
    assert_eq!(limiter.peek_n(&7, 0).unwrap().remaining, 179);
    clock.advance_ns(1);
    assert_eq!(limiter.peek_n(&7, 0).unwrap().remaining, 180);
    assert!(limiter.check_n(&7, 180).unwrap().allowed);
    // Setting the quota in force again changes nothing for anyone.
    limiter.set_quota(raised).unwrap();
    assert_eq!(limiter.peek_n(&8, 0).unwrap().remaining, 180);
    assert_eq!(limiter.peek_n(&7, 0).unwrap().remaining, 0);
    assert_eq!(limiter.peek_n(&7, 0).unwrap().reset_ns, raised.capacity_ns());
}

/// Lowering keeps working as documented: no fresh burst, and the used units carried.
#[test]
fn lowering_never_hands_out_a_fresh_burst() {
    let clock = ManualClock::new(0);
    let limiter: RateLimiter<u64, ManualClock> = RateLimiter::with_clock_and_store(
        policy(Quota::per_hour(36_000, 600).unwrap()),
        clock.clone(),
        MemoryStore::new(),
    );
    assert!(limiter.check_n(&1, 600).unwrap().allowed);
    assert!(limiter.check_n(&2, 100).unwrap().allowed);
    limiter.set_quota(Quota::pay_as_you_go()).unwrap();
    // Key 1 used its whole burst: nothing now. Key 2 had 500 left: the new burst, 60.
    assert!(!limiter.check(&1).unwrap().allowed);
    assert_eq!(limiter.peek_n(&2, 0).unwrap().remaining, 60);
    assert_eq!(limiter.peek_n(&3, 0).unwrap().remaining, 60);
}

/// A quota in a test: small numbers, with or without the window bound.
fn any_quota() -> impl Strategy<Value = Quota> {
    let options = (1u64..=30, 1u64..=4_000)
        .prop_flat_map(|(limit, period_ns)| (Just(limit), Just(period_ns), 1..=limit))
        .prop_map(|(limit, period_ns, burst)| QuotaOptions {
            limit,
            period_ns,
            burst,
        });
    prop_oneof![
        4 => options.clone().prop_map(|o| Quota::new(o).unwrap()),
        1 => options.prop_map(|o| Quota::without_window_bound(o).unwrap()),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// A check of `percent` of the key's burst.
    Check {
        key: u64,
        percent: u64,
    },
    /// Checks of one unit until refused: a greedy client at this instant.
    Drain {
        key: u64,
    },
    /// A greedy client for `percent` of three of its periods: a unit whenever it may,
    /// waiting exactly its retry-after (the clock moves for every key).
    Greedy {
        key: u64,
        percent: u64,
    },
    SetQuota(usize),
    SetKeyQuota {
        key: u64,
        quota: usize,
    },
    RemoveKeyQuota {
        key: u64,
    },
    /// The store forgets every full key.
    Evict,
}

const KEYS: u64 = 4;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS, 0u64..=100).prop_map(|(key, percent)| Op::Check { key, percent }),
        3 => (0..KEYS).prop_map(|key| Op::Drain { key }),
        2 => (0..KEYS, 1u64..=100).prop_map(|(key, percent)| Op::Greedy { key, percent }),
        2 => (0usize..4).prop_map(Op::SetQuota),
        1 => (0..KEYS, 0usize..4).prop_map(|(key, quota)| Op::SetKeyQuota { key, quota }),
        1 => (0..KEYS).prop_map(|key| Op::RemoveKeyQuota { key }),
        1 => Just(Op::Evict),
    ]
}

/// Time before an operation: often none (the same instant: a burst, or a change right
/// after one), often a little, sometimes periods.
fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 1 => Just(1u64), 3 => 0u64..300, 2 => 0u64..8_000]
}

/// The reference for every key: its debt, the class it is in, and its quota timeline.
struct Reference {
    quotas: Vec<Quota>,
    keys: Vec<Model>,
    /// A key never checked, for the default class: what its floor stands for.
    unseen: Model,
    default: Timelines,
    own: BTreeMap<u64, Timelines>,
    /// Per key: (from time, quota in force).
    in_force: Vec<Vec<(u64, Quota)>>,
    admitted: Vec<Vec<(u64, u64)>>,
}

impl Reference {
    fn quota(&self, key: u64) -> Quota {
        self.own.get(&key).unwrap_or(&self.default).current()
    }

    fn drain(&mut self, now: u64) {
        self.unseen.drain(now);
        for m in &mut self.keys {
            m.drain(now);
        }
    }

    fn enter(&mut self, key: u64, now: u64) {
        let quota = self.quota(key);
        self.in_force[key as usize].push((now, quota));
    }

    fn set_quota(&mut self, quota: Quota, now: u64) {
        for key in 0..KEYS {
            if !self.own.contains_key(&key) {
                let m = &mut self.keys[key as usize];
                m.debt_ns = self.default.converted(m.debt_ns, &quota);
            }
        }
        self.unseen.debt_ns = self.default.converted(self.unseen.debt_ns, &quota);
        self.default = self.default.then(quota);
        for key in 0..KEYS {
            if !self.own.contains_key(&key) {
                self.enter(key, now);
            }
        }
    }

    fn set_key_quota(&mut self, key: u64, quota: Quota, now: u64) {
        let from = self.own.get(&key).unwrap_or(&self.default).clone();
        let m = &mut self.keys[key as usize];
        m.debt_ns = from.converted(m.debt_ns, &quota);
        self.own.insert(key, from.then(quota));
        self.enter(key, now);
    }

    fn remove_key_quota(&mut self, key: u64, now: u64) {
        let Some(own) = self.own.remove(&key) else {
            return;
        };
        let to = self.default.current();
        let m = &mut self.keys[key as usize];
        m.debt_ns = own.converted(m.debt_ns, &to).max(self.unseen.debt_ns);
        self.default.join(&own.then(to));
        self.enter(key, now);
    }

    /// Every window of each length in `windows`, for every key: at most what the most
    /// generous quota in force during it allows. The worst windows start at an admission.
    fn check_windows(&self, windows: &[u64]) -> Result<(), TestCaseError> {
        for key in 0..KEYS as usize {
            let admitted = &self.admitted[key];
            let in_force = &self.in_force[key];
            for &w in windows {
                for start in 0..admitted.len() {
                    let s = admitted[start].0;
                    let e = s + w - 1;
                    let count: u64 = admitted[start..].iter().take_while(|a| a.0 <= e).map(|a| a.1).sum();
                    let bound = in_force
                        .iter()
                        .enumerate()
                        .filter(|(i, (from, _))| {
                            let until = in_force.get(i + 1).map_or(u64::MAX, |next| next.0);
                            *from <= e && until >= s
                        })
                        .map(|(_, (_, q))| q.max_admitted_in_window_ns(w))
                        .max()
                        .unwrap();
                    prop_assert!(
                        count <= bound,
                        "key {key}: {count} admitted in [{s}, {e}], at most {bound} allowed"
                    );
                }
            }
        }
        Ok(())
    }
}

/// One limiter per store kind, all driven alike.
struct Limiters {
    memory: RateLimiter<u64, ManualClock>,
    flat: RateLimiter<u64, ManualClock, FlatStore<u64>>,
}

impl Limiters {
    /// Checks both stores; both must answer as the model does. The memory store's answer
    /// (the model's, when they agree) drives the client and the record of admissions, so
    /// the window bound is checked on what the limiter did.
    fn check(
        &self,
        key: u64,
        weight: u64,
        want: paygo_ratelimit::Decision,
    ) -> Result<paygo_ratelimit::Decision, TestCaseError> {
        let memory = self.memory.check_n(&key, weight).unwrap();
        let flat = self.flat.check_n(&key, weight).unwrap();
        prop_assert_eq!(memory, want);
        prop_assert_eq!(flat, want);
        Ok(memory)
    }
}

/// One case of the property below: every answer against the reference model, then
/// every window of every key against the quotas in force during it.
fn run_case(quotas: &[Quota], ops: Vec<(u64, Op)>, extra_window: u64) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(0);
    let limiters = Limiters {
        memory: RateLimiter::with_clock_and_store(
            policy(quotas[0]),
            clock.clone(),
            MemoryStore::with_options(MemoryStoreOptions {
                shards: 2,
                sweep_len_min: 1,
                idle_ns: 0,
            }),
        ),
        flat: RateLimiter::with_clock_and_store(
            policy(quotas[0]),
            clock.clone(),
            FlatStore::with_options(FlatStoreOptions { shards: 1, idle_ns: 0 }),
        ),
    };
    let mut reference = Reference {
        quotas: quotas.to_vec(),
        keys: vec![Model { debt_ns: 0, at_ns: 0 }; KEYS as usize],
        unseen: Model { debt_ns: 0, at_ns: 0 },
        default: Timelines::new(quotas[0]),
        own: BTreeMap::new(),
        in_force: (0..KEYS).map(|_| vec![(0, quotas[0])]).collect(),
        admitted: vec![Vec::new(); KEYS as usize],
    };
    for (gap, op) in ops {
        let now = clock.advance_ns(gap);
        reference.drain(now);
        match op {
            Op::Check { key, percent } => {
                let quota = reference.quota(key);
                let weight = (quota.burst() * percent).div_ceil(100);
                let want = reference.keys[key as usize].check(&quota, weight, true);
                if limiters.check(key, weight, want)?.allowed && weight > 0 {
                    reference.admitted[key as usize].push((now, weight));
                }
            }
            Op::Drain { key } => {
                let quota = reference.quota(key);
                loop {
                    let want = reference.keys[key as usize].check(&quota, 1, true);
                    if !limiters.check(key, 1, want)?.allowed {
                        break;
                    }
                    reference.admitted[key as usize].push((now, 1));
                }
            }
            Op::Greedy { key, percent } => {
                let until = now + (3 * reference.quota(key).period_ns() * percent).div_ceil(100);
                let mut now = now;
                while now < until {
                    let quota = reference.quota(key);
                    let want = reference.keys[key as usize].check(&quota, 1, true);
                    let got = limiters.check(key, 1, want)?;
                    if got.allowed {
                        reference.admitted[key as usize].push((now, 1));
                    } else {
                        now = clock.advance_ns(got.retry_after_ns.unwrap());
                        reference.drain(now);
                    }
                }
            }
            Op::SetQuota(i) => {
                let quota = reference.quotas[i];
                limiters.memory.set_quota(quota).unwrap();
                limiters.flat.set_quota(quota).unwrap();
                reference.set_quota(quota, now);
            }
            Op::SetKeyQuota { key, quota } => {
                let quota = reference.quotas[quota];
                limiters.memory.set_key_quota(key, quota).unwrap();
                limiters.flat.set_key_quota(key, quota).unwrap();
                reference.set_key_quota(key, quota, now);
            }
            Op::RemoveKeyQuota { key } => {
                let had = reference.own.contains_key(&key);
                prop_assert_eq!(limiters.memory.remove_key_quota(&key).unwrap().is_some(), had);
                prop_assert_eq!(limiters.flat.remove_key_quota(&key).unwrap().is_some(), had);
                reference.remove_key_quota(key, now);
            }
            Op::Evict => {
                limiters.memory.store().evict_full(now);
                limiters.flat.store().evict_full(now);
            }
        }
    }
    let mut windows: Vec<u64> = quotas.iter().map(Quota::period_ns).collect();
    windows.extend([1, extra_window]);
    reference.check_windows(&windows)?;
    Ok(())
}

proptest! {
    #![proptest_config(paygo_testkit::proptest_config(256, REGRESSIONS))]

    /// Greedy and random clients, quota changes of the default and of single keys (raise
    /// and lower, burst and rate) at adversarial moments, and evictions: both stores
    /// answer every check as the reference model does, and no window of any key holds
    /// more than the most generous quota in force during it allows.
    #[test]
    fn changes_at_any_moment_keep_every_window_within_the_quotas_in_force(
        quotas in prop::collection::vec(any_quota(), 4),
        ops in prop::collection::vec((gap(), op()), 1..120),
        extra_window in 1u64..20_000,
    ) {
        run_case(&quotas, ops, extra_window)?;
    }

    /// The same for a `DirectLimiter` (one key, no floor: its state is converted whole).
    #[test]
    fn a_direct_limiter_keeps_every_window_within_the_quotas_in_force(
        quotas in prop::collection::vec(any_quota(), 3),
        ops in prop::collection::vec((gap(), 0u8..6, 0u64..=100, 0usize..3), 1..150),
    ) {
        let clock = ManualClock::new(0);
        let limiter = DirectLimiter::with_clock(quotas[0], clock.clone());
        let mut model = Model { debt_ns: 0, at_ns: 0 };
        let mut timelines = Timelines::new(quotas[0]);
        let mut in_force = vec![(0, quotas[0])];
        let mut admitted = Vec::new();
        for (gap, op, percent, q) in ops {
            let now = clock.advance_ns(gap);
            model.drain(now);
            let quota = timelines.current();
            if op == 5 {
                let to = quotas[q];
                limiter.set_quota(to);
                model.debt_ns = timelines.converted(model.debt_ns, &to);
                timelines = timelines.then(to);
                in_force.push((now, to));
                continue;
            }
            // Checks of a share of the burst, or (op 4) everything at this instant.
            let weight = if op == 4 { 1 } else { (quota.burst() * percent).div_ceil(100) };
            loop {
                let want = model.check(&quota, weight, true);
                prop_assert_eq!(limiter.check_n(weight).unwrap(), want);
                if want.allowed && weight > 0 {
                    admitted.push((now, weight));
                }
                if op != 4 || !want.allowed {
                    break;
                }
            }
        }
        let windows: Vec<u64> = quotas.iter().map(Quota::period_ns).chain([1, 5_000]).collect();
        let reference = Reference {
            quotas: quotas.clone(),
            keys: Vec::new(),
            unseen: model,
            default: timelines,
            own: BTreeMap::new(),
            in_force: vec![in_force; KEYS as usize],
            admitted: {
                let mut a = vec![Vec::new(); KEYS as usize];
                a[0] = admitted;
                a
            },
        };
        reference.check_windows(&windows)?;
    }

    /// Several limits: changing one limit's quota converts that limit's state, and the
    /// all-or-nothing checks agree with one reference model per limit.
    #[test]
    fn a_multi_limiter_converts_the_limit_that_changes(
        quotas in prop::collection::vec(any_quota(), 3),
        ops in prop::collection::vec((gap(), 0u8..5, prop::collection::vec(0u64..=100, 2), 0usize..3), 1..100),
    ) {
        let plan = Plan { name: "p".to_owned(), policies: vec![policy(quotas[0]), policy(quotas[1])] };
        let clock = ManualClock::new(0);
        let limiter: MultiLimiter<u64, ManualClock> = MultiLimiter::with_clock(&plan, clock.clone());
        let mut models = [Model { debt_ns: 0, at_ns: 0 }; 2];
        let mut timelines = [Timelines::new(quotas[0]), Timelines::new(quotas[1])];
        for (gap, op, percents, q) in ops {
            let now = clock.advance_ns(gap);
            for m in &mut models {
                m.drain(now);
            }
            if op >= 3 {
                let i = usize::from(op - 3);
                let to = quotas[q];
                limiter.limiters()[i].set_quota(to).unwrap();
                models[i].debt_ns = timelines[i].converted(models[i].debt_ns, &to);
                timelines[i] = timelines[i].then(to);
                continue;
            }
            let weights: Vec<u64> = (0..2).map(|i| (timelines[i].current().burst() * percents[i]).div_ceil(100)).collect();
            let admits = (0..2).all(|i| {
                weights[i] == 0 || models[i].clone().check(&timelines[i].current(), weights[i], false).allowed
            });
            let d = limiter.check_weights(&1, &weights).unwrap();
            prop_assert_eq!(d.allowed, admits);
            for i in 0..2 {
                if admits && weights[i] > 0 {
                    models[i].check(&timelines[i].current(), weights[i], true);
                }
                prop_assert_eq!(u128::from(limiter.limiters()[i].peek_n(&1, 0).unwrap().reset_ns), models[i].debt_ns);
            }
        }
    }
}

/// A clock that changes its limiter's quota in the middle of a check, the moment a store
/// reads the time (after the check read the quota, before it updates the key): the
/// deterministic form of a check racing with a change on another thread.
/// The limiter a [`RacingClock`] changes, set once it exists.
type Target<S> = Arc<OnceLock<Weak<RateLimiter<u64, RacingClock<S>, S>>>>;

#[derive(Debug)]
struct RacingClock<S: Store<u64> + 'static> {
    now_ns: Arc<AtomicU64>,
    armed: Arc<AtomicBool>,
    change_to: Quota,
    limiter: Target<S>,
}

impl<S: Store<u64> + 'static> Clone for RacingClock<S> {
    fn clone(&self) -> Self {
        RacingClock {
            now_ns: Arc::clone(&self.now_ns),
            armed: Arc::clone(&self.armed),
            change_to: self.change_to,
            limiter: Arc::clone(&self.limiter),
        }
    }
}

impl<S: Store<u64> + 'static> Clock for RacingClock<S> {
    fn now_ns(&self) -> u64 {
        if self.armed.swap(false, Ordering::SeqCst)
            && let Some(limiter) = self.limiter.get().and_then(Weak::upgrade)
        {
            limiter.set_quota(self.change_to).unwrap();
        }
        self.now_ns.load(Ordering::SeqCst)
    }
}

/// A key takes `took` of its burst of 10 (T = 1 s); then, while a check that read that
/// quota is under way, the quota is lowered to burst 1 at T = 100 ms, which converts the
/// key to `took` units of 100 ms. The racing check's answer and the key's debt after.
fn race<S: Store<u64> + 'static>(store: S, took: u64) -> (bool, u64) {
    let old = Quota::per_second(10, 10).unwrap();
    let new = Quota::per_second(10, 1).unwrap();
    let clock = RacingClock {
        now_ns: Arc::new(AtomicU64::new(0)),
        armed: Arc::new(AtomicBool::new(false)),
        change_to: new,
        limiter: Arc::new(OnceLock::new()),
    };
    let limiter = Arc::new(RateLimiter::with_clock_and_store(policy(old), clock.clone(), store));
    clock.limiter.set(Arc::downgrade(&limiter)).unwrap();
    assert!(limiter.check_n(&1, took).unwrap().allowed);
    clock.armed.store(true, Ordering::SeqCst);
    let raced = limiter.check(&1).unwrap();
    (raced.allowed, limiter.peek_n(&1, 0).unwrap().reset_ns)
}

/// Found while writing the change: judged by the old quota on the converted state, a
/// racing check was admitted although the new quota (in force when it updated the key)
/// had no room: with the whole burst taken, one instant held 11 units where neither
/// quota allows more than 10. Now a check asks, after reading the key and before writing,
/// whether a change started; if so it writes nothing and checks again under the new
/// quota: refused, and the key keeps exactly its converted debt.
#[test]
fn a_check_racing_with_a_change_is_judged_by_the_new_quota() {
    let tenth = NS_PER_SECOND / 10;
    for took in [10, 9] {
        // The memory store reads the time before the key: the racing check finds the
        // change done. The flat store reads the key first, then asks whether a change
        // started: one has, so it checks again (the stamp is for a change that starts
        // after that question: the next test).
        assert_eq!(race(MemoryStore::new(), took), (false, took * tenth));
        assert_eq!(race(FlatStore::new(), took), (false, took * tenth));
    }
}

/// When a [`Hooked`] store runs its change.
#[derive(Clone, Copy, PartialEq)]
enum When {
    /// Before the check starts (it already read its quota): a change landing between two
    /// limits of a multi-limit check.
    BeforeCheck,
    /// Right after the check's question said yes, before its compare-exchange: the one gap
    /// that only the `FlatStore`'s stamp covers.
    AfterQuestion,
}

/// The change a [`Hooked`] store runs, set once the limiter it changes exists.
type Change = Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>;

/// A store that runs `change` once, at `when`, in the check after `armed` is set: a change
/// on another thread landing at that moment, deterministically. `hook: None` only
/// delegates.
struct Hooked<S> {
    inner: S,
    hook: Option<(When, Arc<AtomicBool>, Change)>,
}

impl<S> Hooked<S> {
    fn fire(&self, now: When) {
        if let Some((when, armed, change)) = &self.hook
            && *when == now
            && armed.swap(false, Ordering::SeqCst)
        {
            (change.get().unwrap())();
        }
    }
}

impl<S: Store<u64>> Store<u64> for Hooked<S> {
    fn check_and_update(
        &self,
        key: &u64,
        now_ns: u64,
        quota: &Quota,
        weight: u64,
    ) -> Result<paygo_ratelimit::Decision, paygo_ratelimit::RateLimitError> {
        self.inner.check_and_update(key, now_ns, quota, weight)
    }

    fn check_and_update_checked(
        &self,
        key: &u64,
        clock: impl Fn() -> u64,
        quota: &Quota,
        weight: u64,
        valid: impl Fn() -> bool + Copy,
        again: impl FnOnce() -> Result<paygo_ratelimit::Decision, paygo_ratelimit::RateLimitError>,
    ) -> Result<paygo_ratelimit::Decision, paygo_ratelimit::RateLimitError> {
        self.fire(When::BeforeCheck);
        let valid = || {
            let yes = valid();
            if yes {
                self.fire(When::AfterQuestion);
            }
            yes
        };
        self.inner
            .check_and_update_checked(key, clock, quota, weight, valid, again)
    }

    fn peek(
        &self,
        key: &u64,
        now_ns: u64,
        quota: &Quota,
        weight: u64,
    ) -> Result<paygo_ratelimit::Decision, paygo_ratelimit::RateLimitError> {
        self.inner.peek(key, now_ns, quota, weight)
    }

    fn adjust(
        &self,
        key: &u64,
        now_ns: u64,
        quota: &Quota,
        delta: i64,
    ) -> Result<paygo_ratelimit::Decision, paygo_ratelimit::RateLimitError> {
        self.inner.adjust(key, now_ns, quota, delta)
    }

    fn evict_full(&self, now_ns: u64) -> usize {
        self.inner.evict_full(now_ns)
    }

    fn requota(
        &self,
        now_ns: u64,
        except: &[&u64],
        convert: &dyn Fn(u64) -> u64,
    ) -> Result<usize, paygo_ratelimit::RateLimitError> {
        self.inner.requota(now_ns, except, convert)
    }

    fn requota_key(
        &self,
        key: &u64,
        now_ns: u64,
        convert: &dyn Fn(u64) -> u64,
    ) -> Result<(), paygo_ratelimit::RateLimitError> {
        self.inner.requota_key(key, now_ns, convert)
    }

    fn give_back(
        &self,
        key: &u64,
        written_tat: u64,
        clock: &dyn Fn() -> u64,
        taken_ns: u64,
        valid: &dyn Fn() -> bool,
    ) -> Result<(), paygo_ratelimit::RateLimitError> {
        self.inner.give_back(key, written_tat, clock, taken_ns, valid)
    }
}

/// Found by review (session 12): no test reached the stamp. A check whose question said
/// yes, with a change (burst 10 at T = 11 ms to burst 10 at T = 1 s) converting its key
/// before its compare-exchange: without the stamp the exchange wrote the old quota's
/// answer over the converted state, and 19 units went at one instant where both quotas
/// allow 10. With it, the exchange fails and the check is made again under the new quota.
#[test]
fn a_change_between_a_checks_question_and_its_exchange_is_caught_by_the_stamp() {
    let old = Quota::per_second(100, 10).unwrap();
    let new = Quota::per_second(10, 10).unwrap();
    let clock = ManualClock::new(0);
    let armed = Arc::new(AtomicBool::new(false));
    let change: Change = Arc::new(OnceLock::new());
    let store = Hooked {
        inner: FlatStore::<u64>::new(),
        hook: Some((When::AfterQuestion, Arc::clone(&armed), Arc::clone(&change))),
    };
    let limiter = Arc::new(RateLimiter::with_clock_and_store(policy(old), clock.clone(), store));
    let weak = Arc::downgrade(&limiter);
    let _ = change.set(Box::new(move || weak.upgrade().unwrap().set_quota(new).unwrap()));
    // The key is held (in debt for 11 ms), so the check takes the lock-free path.
    assert!(limiter.check(&1).unwrap().allowed);
    clock.set_ns(NS_PER_SECOND);
    armed.store(true, Ordering::SeqCst);
    assert!(limiter.check_n(&1, 10).unwrap().allowed);
    assert!(!armed.load(Ordering::SeqCst), "the change ran inside the check");
    let mut more = 0;
    while limiter.check(&1).unwrap().allowed {
        more += 1;
    }
    assert_eq!(more, 0, "{more} more after the whole burst of 10 at the same instant");
}

/// How many units limit 0 admits at one instant (admitted checks) when a change lands
/// between its take and its give-back: limit 0 (burst 10 at T = 1 s) has 9 taken, a
/// check of one unit on both limits takes its 10th, the change (burst 10 at T ~ 1 ms) converts the key, limit 1
/// (already empty) refuses, and limit 0 gives back.
fn give_back_race<S: Store<u64> + 'static>(make: impl Fn() -> S) -> u64 {
    let a = Quota::per_second(10, 10).unwrap();
    let b = Quota::per_second(1_000, 10).unwrap();
    let one = Quota::per_second(1, 1).unwrap();
    let plan = Plan {
        name: "p".to_owned(),
        policies: vec![
            policy(a),
            Policy {
                name: PolicyName::new("q").unwrap(),
                unit: Unit::Requests,
                quota: one,
            },
        ],
    };
    let clock = ManualClock::new(1_000 * NS_PER_SECOND);
    let change: Change = Arc::new(OnceLock::new());
    let armed = Arc::new(AtomicBool::new(false));
    let mut index = 0;
    let multi = Arc::new(MultiLimiter::with_clock_and_stores(&plan, clock, |_| {
        index += 1;
        // Limit 1's check changes limit 0's quota first.
        let hook = (index == 2).then(|| (When::BeforeCheck, Arc::clone(&armed), Arc::clone(&change)));
        Hooked { inner: make(), hook }
    }));
    let weak = Arc::downgrade(&multi);
    let _ = change.set(Box::new(move || {
        weak.upgrade().unwrap().limiters()[0].set_quota(b).unwrap();
    }));
    assert!(multi.check_weights(&1, &[9, 1]).unwrap().allowed);
    armed.store(true, Ordering::SeqCst);
    assert!(!multi.check_weights(&1, &[1, 1]).unwrap().allowed);
    assert_eq!(multi.limiters()[0].quota(), b);
    let mut admitted = 9;
    while multi.check_weights(&1, &[1, 0]).unwrap().allowed {
        admitted += 1;
    }
    admitted
}

/// Found by review (session 12): the give-back of a refused multi-limit check subtracted
/// its units in the old quota's interval (1 s) from a key a change had converted to the
/// new one's (about 1 ms): its whole debt went, and 19 units went at one instant where
/// both quotas allow 10. A give-back now asks whether a change came between, as a check
/// does, and then gives nothing back: the refused check's unit stays as debt, so the
/// instant holds the 9 admitted units and no more.
#[test]
fn a_give_back_racing_a_change_gives_nothing_back() {
    assert_eq!(give_back_race(MemoryStore::<u64>::new), 9);
    assert_eq!(give_back_race(FlatStore::<u64>::new), 9);
}

/// Found by review (session 12): a converted TAT was capped at 2^62 - 1 ns for every
/// store, which from the year 2116 on is before the change's own time: any change, even
/// to the same quota, handed every key a fresh burst. Each store now caps at what it
/// holds (a `MemoryStore` 2^64 - 1, a `DirectLimiter` 2^63 - 1).
#[test]
fn a_change_after_2116_keeps_every_keys_debt() {
    let quota = Quota::pay_as_you_go();
    let clock = ManualClock::new((1 << 62) + NS_PER_HOUR);
    let limiter: RateLimiter<u64, ManualClock> =
        RateLimiter::with_clock_and_store(policy(quota), clock.clone(), MemoryStore::new());
    let direct = DirectLimiter::with_clock(quota, clock);
    // Every key here is refused within its burst of 60.
    let drain = |check: &dyn Fn() -> bool| (0..=60).take_while(|_| check()).count();
    assert_eq!(drain(&|| limiter.check(&1).unwrap().allowed), 60);
    assert_eq!(drain(&|| direct.check().unwrap().allowed), 60);
    limiter.set_quota(quota).unwrap();
    direct.set_quota(quota);
    assert_eq!(drain(&|| limiter.check(&1).unwrap().allowed), 0);
    assert_eq!(drain(&|| direct.check().unwrap().allowed), 0);
    // A raise still fills at the new rate, from the key's converted debt.
    limiter.set_quota(Quota::per_hour(18_000, 180).unwrap()).unwrap();
    assert_eq!(drain(&|| limiter.check(&1).unwrap().allowed), 0);
}
