#!/usr/bin/env python3
"""Where a rate-limit check's time goes inside Redis (docs/ratelimit.md, "Figures").

Calls paygo's limiter script (crates/paygo-redis/src/limiter.lua) with batches of 1, 8 and 64
checks, redis_rate's GCRA script as the benchmark re-implements it
(crates/paygo-redis/benches/vs_redis_rate.rs), and single Redis commands inside Lua, many
times each, pipelined so that Redis stays busy, and prints Redis's own time per call
(INFO commandstats: the script's execution, without the network). Needs `pip install redis`
and a Redis on REDIS_URL (default redis://127.0.0.1:6379); resets the server's command
statistics and deletes its own keys ({paygo-cost}*, {rr-cost}*, cost:*).

    python3 benches/redis/script_cost.py
"""
import os
import pathlib
import redis

root = pathlib.Path(__file__).resolve().parents[2]
r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
limiter = (root / "crates/paygo-redis/src/limiter.lua").read_text()
bench = (root / "crates/paygo-redis/benches/vs_redis_rate.rs").read_text()
baseline = bench.split('r"\n', 1)[1].split('\n";', 1)[0]
PAYG = "18000:3600000000000:60:200000000:1"  # Pay As You Go: 18,000 an hour, burst 60


def per_call(script, args_of, calls=3000, numkeys=0):
    sha = r.script_load(script)
    r.config_resetstat()
    pipe = r.pipeline(transaction=False)
    for c in range(calls):
        pipe.evalsha(sha, numkeys, *args_of(c))
        if c % 100 == 99:
            pipe.execute()
    pipe.execute()
    stat = r.info("commandstats")["cmdstat_evalsha"]
    return stat["usec"] / stat["calls"]


def paygo_batch(n):
    def args(c):
        a = ["{paygo-cost}:now", "{paygo-cost}", 1, "", PAYG]
        for i in range(n):
            a += ["c", str((c * n + i) % 100000), "1"]
        return a
    return args


print("Redis time per script call (us), pipelined:")
print(f"  redis_rate, one check:      {per_call(baseline, lambda c: ['{rr-cost}:%d' % (c % 100000), 60, 18000, 3600, 1], numkeys=1):7.1f}")
for n in (1, 8, 64):
    us = per_call(limiter, paygo_batch(n), numkeys=1)
    print(f"  paygo, batch of {n:3}:        {us:7.1f}  ({us / n:.2f} a check)")

# One call at a time (no pipelining): what a single check costs, cache misses included.
def one_at_a_time(script, args_of, calls=1500, numkeys=1):
    sha = r.script_load(script)
    r.config_resetstat()
    for c in range(calls):
        r.evalsha(sha, numkeys, *args_of(c))
    stat = r.info("commandstats")["cmdstat_evalsha"]
    return stat["usec"] / stat["calls"]


# The floor: a check with every feature inline and nothing else (check_floor.lua), then
# without the monotonic time, then without the class read (the quota from the arguments).
floor = (root / "benches/redis/check_floor.lua").read_text()
now_block = floor[floor.index("local last = call('GET', KEYS[1])"):floor.index("call('SET', KEYS[1], NOW)") + len("call('SET', KEYS[1], NOW)")]
no_now = floor.replace(now_block, "local NOW = format('%d%09d', now_s, now_n)")
no_class = no_now.replace("call('HMGET', ck, 'q', 'h', 'f', 'o')", "{ ARGV[4], '', '0', '0' }")
r.hset("{paygo-cost}:c:0", mapping={"q": PAYG, "h": "", "f": "0", "o": "0"})
rr_args = lambda c: ['{rr-cost}:%d' % (c % 100000), 60, 18000, 3600, 1]
print("Redis time for one check (us), pipelined / one call at a time:")
for name, script, args in (
    ("redis_rate", baseline, rr_args),
    ("paygo's script", limiter, paygo_batch(1)),
    ("the floor (check_floor.lua)", floor, paygo_batch(1)),
    ("  without {p}:now", no_now, paygo_batch(1)),
    ("  and without the class read", no_class, paygo_batch(1)),
):
    print(f"  {name:30} {per_call(script, args, numkeys=1):6.1f} / {one_at_a_time(script, args):6.1f}")

print("Redis time per item inside Lua (us), 64 items a call:")
keys = lambda c: ["cost:%d" % ((c * 64 + i) % 20000) for i in range(64)]
items = {
    "GET": "for i=1,#ARGV do redis.call('GET', ARGV[i]) end",
    "SET": "for i=1,#ARGV do redis.call('SET', ARGV[i], '1780000000123456789') end",
    "SET ... PXAT": "for i=1,#ARGV do redis.call('SET', ARGV[i], '1780000000123456789', 'PXAT', '1900000000000') end",
    "MGET (per key)": "redis.call('MGET', unpack(ARGV))",
    "string.format('%d%09d')": "local x for i=1,#ARGV do x = string.format('%d%09d', 1780000000, 123456789 + i) end",
    "split a 19-digit time": "local x for i=1,#ARGV do local v='1780000000123456789' x = tonumber(string.sub(v,1,10)) + tonumber(string.sub(v, 11)) end",
    "a table of 4 fields": "local x for i=1,#ARGV do x = {a=1,b=2,c=3,d=4} end",
    "an answer of 7 items, nested": "local o={} for i=1,#ARGV do o[i] = {'ok',1,'" + PAYG + "',1,59,200000000,-1} end return o",
    "an answer of 4 integers, flat": "local o={} for i=1,#ARGV do local n=#o o[n+1]=1 o[n+2]=59 o[n+3]=200000000 o[n+4]=-1 end return o",
}
empty = per_call("return 1", keys)
for name, body in items.items():
    if "return" not in body:
        body += " return 1"
    print(f"  {name:32} {(per_call(body, keys) - empty) / 64:6.2f}")
for pattern in ("{paygo-cost}*", "{rr-cost}*", "cost:*"):
    for k in r.scan_iter(pattern):
        r.delete(k)
