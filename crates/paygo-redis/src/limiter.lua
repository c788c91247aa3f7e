-- paygo-redis: every operation of the shared rate-limit store, atomically (docs/ratelimit.md,
-- "The shared store on Redis"). One script, loaded once and called with EVALSHA; one call
-- carries a batch of operations, run in order at one time.
--
-- Arithmetic: Lua numbers are doubles, exact for integers up to 2^53. Times are kept as
-- nanoseconds *relative to now* (now = 0), which are exact for the values that matter: a
-- TAT or floor at most DEBT_MAX ahead of now (the store refuses quotas whose capacity, and
-- adjustments whose debt, would pass it). Absolute times travel as decimal strings of
-- nanoseconds since the Unix epoch and are split into seconds and nanoseconds to convert.
-- Every division goes through idiv or muldiv_ceil, which are exact for their documented
-- ranges.
--
-- ARGV[1] prefix, ARGV[2] number of limits L, ARGV[3] time ("" = Redis TIME; otherwise the
-- nanoseconds to use, for tests only), ARGV[4 .. 3 + L] each limit's default quota as the
-- caller knows it (used only to re-create a limit the server lost, after a restart without
-- its data), then the operations, each an opcode and its key followed by its arguments:
--   c key w1..wL          check, all or nothing
--   a key d1..dL          adjust (reserve-then-adjust)
--   q key i               the quota of key on limit i (0-based)
--   s - i quota           the default quota of limit i
--   k key i quota         the key's own quota on limit i
--   r key i               back to the default quota
--   i -                   the default quotas in force (limits created if missing)
-- KEYS[1] is prefix..':now' (declared so that a cluster routes the call; every key of a
-- store shares the prefix's hash tag).
--
-- Data: prefix:c:i      limit i's class: q (quota), h (past history entries), f (floor),
--                       o (how many keys have their own quota on it)
--       prefix:t:i:key  a key's TAT, expiring a second after the key is full again
--       prefix:o:i:key  a key's own quota: q, h (kept until removed)
--       prefix:now      the latest time a batch ran at (time never goes backwards)
-- The hot path (checks, adjustments) runs inline in the batch's loop below, with a handful
-- of small functions: Redis runs the whole chunk on every call, and every closure made, every
-- upvalue bound and every table built costs each call (measured: benches/redis/script_cost.py).
-- The functions of the other operations are made only for a batch that has one (admin).
-- A quota is "limit:period_ns:burst:interval_ns:window_bound"; a history "g,b;g,b;...".

local E9 = 1000000000
local DEBT_MAX = 4503599627370496 -- 2^52 ns, about 52 days
local GRACE_MS = 1000

local call, tonumber, format, sub = redis.call, tonumber, string.format, string.sub
local prefix = ARGV[1]
local L = tonumber(ARGV[2])

-- ---------------------------------------------------------------- integers

-- floor(a / b) and a - floor(a / b) * b, exact for 0 <= a, b and a + b <= 2^53: the double
-- quotient is off by at most one, and q * b <= a + b stays exact.
local function idiv(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
    r = r + b
  elseif r >= b then
    q = q + 1
    r = r - b
  end
  return q, r
end

-- ---------------------------------------------------------------- time

local now_s, now_n
local test_time = ARGV[3] ~= ''

-- Splits a decimal string of nanoseconds into seconds and nanoseconds.
local function split(v)
  if v == nil or v == false or v == '' then
    return 0, 0
  end
  local len = #v
  if len <= 9 then
    return 0, tonumber(v)
  end
  return tonumber(sub(v, 1, len - 9)), tonumber(sub(v, len - 8))
end

-- An absolute time (decimal string) as nanoseconds after now (negative: before).
-- Exact within 2^53 of now; a time long past reads as some large negative number.
local function rel(v)
  local s, n = split(v)
  return (s - now_s) * E9 + (n - now_n)
end

-- Nanoseconds after now (0 <= r <= DEBT_MAX + 1) as an absolute decimal string. Numbers
-- become text through '%d': concatenating a Lua number formats it as a float ('%.14g').
local function abs(r)
  local q, n = idiv(now_n + r, E9)
  local s = now_s + q
  if s == 0 then
    return format('%d', n)
  end
  return format('%d%09d', s, n)
end

-- Writes a key's TAT (relative, under key k): stored when ahead of now, expiring a second
-- after the key is full again (the expiry in whole milliseconds, rounded up); dropped when
-- full.
local function write_tat(k, r)
  if r <= 0 then
    call('DEL', k)
  elseif test_time then
    call('SET', k, abs(r), 'PX', '600000')
  else
    -- abs(r), inline, and the expiry from the same seconds and nanoseconds.
    local q, n = idiv(now_n + r, E9)
    local s = now_s + q
    local ms = math.floor(n / 1000000)
    if n > ms * 1000000 then
      ms = ms + 1
    end
    call('SET', k, format('%d%09d', s, n), 'PXAT', format('%d', s * 1000 + ms + GRACE_MS))
  end
end

-- ---------------------------------------------------------------- quotas and classes

local quotas, classes = {}, {}

-- A quota string's burst and interval (parsed once a call).
local function quota(qs)
  local cached = quotas[qs]
  if cached then
    return cached
  end
  local _, _, burst, t = string.match(qs, '^(%d+):(%d+):(%d+):(%d+):[01]$')
  local parsed = { burst = tonumber(burst), t = tonumber(t), s = qs }
  parsed.cap = parsed.burst * parsed.t
  quotas[qs] = parsed
  return parsed
end

-- Limit i's class (0-based): its quota, history string, floor (relative), how many keys have
-- their own quota, the stem of its keys' TATs; read once a call.
local function class(i)
  local cached = classes[i]
  if cached then
    return cached
  end
  local ck = prefix .. ':c:' .. format('%d', i)
  local v = call('HMGET', ck, 'q', 'h', 'f', 'o')
  if not v[1] then
    -- A new store, or a server that lost its data: the caller's default quota, no history.
    -- (Only for a limit that exists: an index out of range finds no default, and the
    -- write below fails.)
    local default = nil
    if i >= 0 and i < L then
      default = ARGV[4 + i]
    end
    v = { default, '', '0', '0' }
    call('HSET', ck, 'q', v[1], 'h', v[2], 'f', v[3], 'o', v[4])
  end
  local c = { key = ck, q = quota(v[1]), h = v[2] or '', f = rel(v[3] or '0'), o = tonumber(v[4] or '0'),
    stem = prefix .. ':t:' .. format('%d', i) .. ':' }
  classes[i] = c
  return c
end

-- ---------------------------------------------------------------- runtime changes

-- The operations that are not checks or adjustments: quota reads and changes, made only for a
-- batch that has one. H carries what they share with the hot path; admin itself binds no
-- upvalue, so making it costs a call almost nothing.
local function admin(H)
  local idiv, quota, class, write_tat, abs, rel, classes = H.idiv, H.quota, H.class, H.write_tat, H.abs, H.rel, H.classes
  local prefix, DEBT_MAX = H.prefix, H.DEBT_MAX
  local HISTORY_LEN_MAX = 8
  local format = string.format

  local function own_key(i, key)
    return prefix .. ':o:' .. format('%d', i) .. ':' .. key
  end

  -- A key's state on limit i, as the hot path loads it: its TAT key and TAT (relative), the
  -- quota in force, the class floor unless it has its own quota, its own quota and history,
  -- and the TAT its decisions read (at least the floor).
  local function state(i, key)
    local c = class(i)
    local s = { key = c.stem .. key, q = c.q }
    s.tat = rel(redis.call('GET', s.key) or '0')
    s.floor = c.f
    if c.o > 0 then
      local v = redis.call('HMGET', own_key(i, key), 'q', 'h')
      if v[1] then
        s.own, s.own_h, s.q, s.floor = v[1], v[2] or '', quota(v[1]), nil
      end
    end
    s.effective = s.tat
    if s.floor and s.floor > s.tat then
      s.effective = s.floor
    end
    return s
  end

  local L = H.L

  local function class_key(i)
    return prefix .. ':c:' .. format('%d', i)
  end

  local P24 = 16777216
  local POW2 = {}
  do
    local p = 1
    for k = 0, 23 do
      POW2[k] = p
      p = p * 2
    end
  end

  -- ceil(a * b / c) for 0 <= a, b <= 2^52 and 1 <= c <= 2^52, exact; DEBT_MAX + 1 when the
  -- result is larger than DEBT_MAX. The product in base-2^24 limbs, then long division one
  -- bit at a time (the remainder stays below c, so below 2^53).
  local function muldiv_ceil(a, b, c)
    if a == 0 or b == 0 then
      return 0
    end
    local al, bl = {}, {}
    for i = 0, 2 do
      local q, r = idiv(a, P24)
      al[i] = r
      a = q
      q, r = idiv(b, P24)
      bl[i] = r
      b = q
    end
    local p = { [0] = 0, 0, 0, 0, 0, 0 }
    for i = 0, 2 do
      for j = 0, 2 do
        p[i + j] = p[i + j] + al[i] * bl[j]
      end
    end
    local carry = 0
    for i = 0, 5 do
      local q, r = idiv(p[i] + carry, P24)
      p[i] = r
      carry = q
    end
    local q, rem = 0, 0
    for i = 5, 0, -1 do
      local limb = p[i]
      for k = 23, 0, -1 do
        local bit = math.floor(limb / POW2[k])
        limb = limb - bit * POW2[k]
        rem = rem * 2 + bit
        q = q * 2
        if rem >= c then
          rem = rem - c
          q = q + 1
        end
        if q > DEBT_MAX then
          return DEBT_MAX + 1
        end
      end
    end
    if rem > 0 then
      q = q + 1
    end
    return q
  end

  -- A history: the current entry and the past ones, each { g = interval, b = burst }.
  local function history(qs, hs)
    local q = quota(qs)
    local h = { cur = { g = q.t, b = q.burst }, past = {} }
    if hs and hs ~= '' then
      for g, b in string.gmatch(hs, '(%d+),(%d+)') do
        h.past[#h.past + 1] = { g = tonumber(g), b = tonumber(b) }
      end
    end
    return h
  end

  local function history_string(h)
    local parts = {}
    for i, e in ipairs(h.past) do
      parts[i] = string.format('%d,%d', e.g, e.b)
    end
    return table.concat(parts, ';')
  end

  local function same(a, b)
    return a.g == b.g and a.b == b.b
  end

  -- Adds a past entry unless it is there; when full, the two fastest merge into the smaller
  -- interval and the larger burst (requota.rs, History::push).
  local function push(h, e)
    if same(e, h.cur) then
      return
    end
    for _, p in ipairs(h.past) do
      if same(e, p) then
        return
      end
    end
    if #h.past == HISTORY_LEN_MAX - 1 then
      -- The two smallest intervals, ties to the earlier index (a stable sort's first two).
      local first, second
      for i, p in ipairs(h.past) do
        if first == nil or p.g < h.past[first].g then
          first = i
        end
      end
      for i, p in ipairs(h.past) do
        if i ~= first and (second == nil or p.g < h.past[second].g) then
          second = i
        end
      end
      if second < first then
        first, second = second, first
      end
      local a, b = h.past[first], h.past[second]
      h.past[first] = { g = math.min(a.g, b.g), b = math.max(a.b, b.b) }
      table.remove(h.past, second)
    end
    h.past[#h.past + 1] = e
  end

  local function entries(h)
    local all = {}
    for i, e in ipairs(h.past) do
      all[i] = e
    end
    all[#all + 1] = h.cur
    return all
  end

  -- The history once the quota q is in force (History::then).
  local function after(h, q)
    local next = { cur = { g = q.t, b = q.burst }, past = {} }
    for _, e in ipairs(entries(h)) do
      if e.g <= next.cur.g then
        push(next, e)
      end
    end
    return next
  end

  -- Every entry of both, a's current staying current (History::union).
  local function union(a, b)
    local next = { cur = a.cur, past = {} }
    for i, e in ipairs(a.past) do
      next.past[i] = e
    end
    for _, e in ipairs(entries(b)) do
      push(next, e)
    end
    return next
  end

  -- A change from the history h to the quota q, at now (Conversion::new).
  local function conversion(h, q)
    local k = nil
    for _, e in ipairs(entries(h)) do
      local need
      if e.g <= q.t then
        need = q.burst - h.cur.b
      else
        need = e.b - h.cur.b
      end
      if k == nil or need > k then
        k = need
      end
    end
    return { from = h.cur.g, to = q.t, k = k }
  end

  -- The debt under the new quota of a debt d under the old one: max(0, ceil(d T'/T) + k T'),
  -- at most DEBT_MAX (Conversion::debt_ns).
  local function converted_debt(c, d)
    local carried = muldiv_ceil(d, c.to, c.from)
    if carried > DEBT_MAX then
      return DEBT_MAX
    end
    local offset = c.k * c.to
    -- |k T'| beyond 2^53 only when k < 0 (k T' <= b' T' <= DEBT_MAX otherwise): then the sum
    -- is below 0, whatever the rounding.
    if offset < -9007199254740992 then
      return 0
    end
    local owed = carried + offset
    if owed <= 0 then
      return 0
    end
    return math.min(owed, DEBT_MAX)
  end

  -- The TAT (relative) under the new quota of a key whose effective TAT was r
  -- (Conversion::tat): unchanged when that is no debt.
  local function converted_tat(c, r)
    local d = converted_debt(c, math.max(r, 0))
    if d == 0 then
      return math.min(r, 0)
    end
    return d
  end

  -- The class floor after the change (Conversion::floor): a relative time, or nil for none.
  local function converted_floor(c, floor)
    local f = converted_tat(c, math.max(floor, 0))
    if f > 0 then
      return f
    end
    return nil
  end

  -- The default quota of limit i: every key of the class without its own quota carried into
  -- it (a scan of the class's keys), the floor converted, the history extended.
  local function op_set_quota(i, qs)
    local c = class(i)
    local h = history(c.q.s, c.h)
    local q = quota(qs)
    local conv = conversion(h, q)
    local floor = c.f
    local new_floor = converted_floor(conv, floor)
    -- SCAN may return a key twice: each is converted once.
    local seen = {}
    local cursor = '0'
    local stem = c.stem
    repeat
      local page = redis.call('SCAN', cursor, 'MATCH', stem .. '*', 'COUNT', 1000)
      cursor = page[1]
      for _, tk in ipairs(page[2]) do
        if not seen[tk] then
          seen[tk] = true
          local v = redis.call('GET', tk)
          local own = c.o > 0 and redis.call('EXISTS', own_key(i, string.sub(tk, #stem + 1))) == 1
          if v and not own then
            -- Conversion::swept_tat: a full key is left alone; at least the new floor.
            local r = rel(v)
            if r > 0 then
              r = converted_tat(conv, math.max(r, floor))
            end
            if new_floor and new_floor > r then
              r = new_floor
            end
            write_tat(tk, r)
          end
        end
      end
    until cursor == '0'
    local next = after(h, q)
    local f = '0'
    if new_floor then
      f = abs(new_floor)
    end
    redis.call('HSET', class_key(i), 'q', qs, 'h', history_string(next), 'f', f)
    classes[i] = nil
    return { 'ok' }
  end

  local function op_set_key_quota(key, i, qs)
    local s = state(i, key)
    local h
    if s.own then
      h = history(s.own, s.own_h)
    else
      h = history(class(i).q.s, class(i).h)
    end
    local q = quota(qs)
    local conv = conversion(h, q)
    local r = converted_tat(conv, s.effective)
    local next = after(h, q)
    redis.call('HSET', own_key(i, key), 'q', qs, 'h', history_string(next))
    if not s.own then
      redis.call('HINCRBY', class_key(i), 'o', 1)
      classes[i] = nil
    end
    write_tat(s.key, r)
    return { 'ok' }
  end

  local function op_remove_key_quota(key, i)
    local s = state(i, key)
    if not s.own then
      return { 'ok', '' }
    end
    local c = class(i)
    local own = history(s.own, s.own_h)
    local conv = conversion(own, c.q)
    local r = converted_tat(conv, s.tat)
    if c.f > r then
      r = c.f
    end
    redis.call('DEL', own_key(i, key))
    write_tat(s.key, r)
    local joined = union(history(c.q.s, c.h), after(own, c.q))
    redis.call('HSET', class_key(i), 'h', history_string(joined))
    redis.call('HINCRBY', class_key(i), 'o', -1)
    classes[i] = nil
    return { 'ok', s.own }
  end

  local function op_init()
    local out = { 'ok' }
    for i = 1, L do
      out[#out + 1] = class(i - 1).q.s
    end
    return out
  end

  return {
    quota_of = function(key, i)
      return { 'ok', state(i, key).q.s }
    end,
    set_quota = op_set_quota,
    set_key_quota = op_set_key_quota,
    remove_key_quota = op_remove_key_quota,
    init = op_init,
  }
end

-- ---------------------------------------------------------------- the batch

if test_time then
  now_s, now_n = split(ARGV[3])
else
  local t = call('TIME')
  now_s = tonumber(t[1])
  now_n = tonumber(t[2]) * 1000
  -- Never before an earlier batch's time (a server clock stepped back).
  local last = call('GET', KEYS[1])
  if last and rel(last) > 0 then
    now_s, now_n = split(last)
  end
  call('SET', KEYS[1], abs(0))
end

-- The answer is one flat list: the batch's time, the list of quotas the answers name (checks
-- and adjustments name a quota by its 1-based index in it: a quota's text is written once a
-- batch, not once a check), then each operation's result as its length and its items.
local results, R = { abs(0), false }, 2
local QLIST, QN = {}, 0

-- What every check and adjustment answers per limit besides its own items: the quota's index
-- in QLIST (added on first use) and remaining, the units admitted now at once at debt d,
-- floor(max(cap - d, 0) / T).
local function named(q, d)
  local qi = q.qi
  if not qi then
    QN = QN + 1
    QLIST[QN] = q.s
    q.qi = QN
    qi = QN
  end
  local left = 0
  if d < q.cap then
    left = idiv(q.cap - d, q.t)
  end
  return qi, left
end

-- The state of the key an operation reads, limit i at index i + 1, in arrays reused from one
-- operation to the next (a table per operation costs as much as a Redis call): its TAT key,
-- its debt (the TAT its decisions read, at least the class floor unless the key has its own
-- quota, not below now: relative, >= 0; for an adjustment, the debt after it), the quota in
-- force, and the operation's weight or delta.
local KK, KD, KQ, KW = {}, {}, {}, {}

local changes = nil
local at, n_args = 4 + L, #ARGV
while at <= n_args do
  local op, key = ARGV[at], ARGV[at + 1]
  if op == 'c' or op == 'a' then
    -- Load every limit's state, limit after limit; a check stops at a weight above its
    -- limit's burst, an adjustment at a debt that would pass DEBT_MAX (the limits after it
    -- are not read: a missing class is not created for an operation that does nothing).
    local over, past = nil, nil
    for i = 1, L do
      local c = classes[i - 1] or class(i - 1)
      local tk = c.stem .. key
      -- rel(), inline: a TAT of 10 digits or more (seconds and nanoseconds), or none.
      local v, d = call('GET', tk), nil
      if v then
        local len = #v
        if len > 9 then
          d = (tonumber(sub(v, 1, len - 9)) - now_s) * E9 + (tonumber(sub(v, len - 8)) - now_n)
        else
          d = rel(v)
        end
      else
        d = -1
      end
      local q, f = c.q, c.f
      if c.o > 0 then
        local v = call('HMGET', prefix .. ':o:' .. format('%d', i - 1) .. ':' .. key, 'q')
        if v[1] then
          q, f = quota(v[1]), false
        end
      end
      if f and f > d then
        d = f
      end
      if d < 0 then
        d = 0
      end
      KK[i], KQ[i] = tk, q
      local w = tonumber(ARGV[at + 1 + i])
      KW[i] = w
      if op == 'c' then
        if w > q.burst then
          over = i
          break
        end
      elseif w > 0 then
        -- The adjustment's debt: more taken (a debt past DEBT_MAX is refused) ...
        local amount = w * q.t
        if amount > DEBT_MAX or d + amount > DEBT_MAX then
          past = i
          break
        end
        d = d + amount
      elseif w < 0 then
        -- ... or given back, never below the class floor.
        d = math.max(d - math.min(-w, DEBT_MAX) * q.t, 0)
        if f and f > d then
          d = f
        end
      end
      KD[i] = d
    end
    if over then
      -- 3, 'W', limit, quota text: a weight above a burst (nothing written).
      results[R + 1], results[R + 2], results[R + 3], results[R + 4] = 3, 'W', over - 1, KQ[over].s
      R = R + 4
    elseif op == 'c' then
      -- A check, all or nothing. Emits 2 + 5L, 'ok', allowed, then per limit: quota index,
      -- allowed, remaining, reset (debt after, ns), retry after (ns, -1 for none).
      local allowed = 1
      for i = 1, L do
        local q, w = KQ[i], KW[i]
        if w > 0 and KD[i] > q.cap - w * q.t then
          allowed = 0
        end
      end
      results[R + 1], results[R + 2] = 2 + 5 * L, 'ok'
      results[R + 3] = allowed
      R = R + 3
      for i = 1, L do
        local q, w, debt = KQ[i], KW[i], KD[i]
        local a, reset, retry = 1, debt, -1
        if w > 0 then
          if allowed == 1 then
            reset = debt + w * q.t
            write_tat(KK[i], reset)
          elseif debt > q.cap - w * q.t then
            a = 0
            retry = debt - (q.cap - w * q.t)
          end
        end
        local qi, left = named(q, reset)
        results[R + 1], results[R + 2], results[R + 3], results[R + 4], results[R + 5] = qi, a, left, reset, retry
        R = R + 5
      end
    else
      -- An adjustment (reserve-then-adjust), its debts computed while loading. Emits
      -- 1 + 3L, 'ok', then per limit: quota index, remaining, debt (ns); or 2, 'A', limit
      -- when a debt would pass DEBT_MAX (no TAT written then).
      if past then
        results[R + 1], results[R + 2], results[R + 3] = 2, 'A', past - 1
        R = R + 3
      else
        results[R + 1], results[R + 2] = 1 + 3 * L, 'ok'
        R = R + 2
        for i = 1, L do
          local q, debt = KQ[i], KD[i]
          if KW[i] ~= 0 then
            write_tat(KK[i], debt)
          end
          local qi, left = named(q, debt)
          results[R + 1], results[R + 2], results[R + 3] = qi, left, debt
          R = R + 3
        end
      end
    end
    at = at + 2 + L
  else
    changes = changes or admin({ idiv = idiv, quota = quota, class = class, write_tat = write_tat, abs = abs,
      rel = rel, classes = classes, prefix = prefix, DEBT_MAX = DEBT_MAX, L = L })
    local result
    if op == 'q' then
      result = changes.quota_of(key, tonumber(ARGV[at + 2]))
      at = at + 3
    elseif op == 's' then
      result = changes.set_quota(tonumber(ARGV[at + 2]), ARGV[at + 3])
      at = at + 4
    elseif op == 'k' then
      result = changes.set_key_quota(key, tonumber(ARGV[at + 2]), ARGV[at + 3])
      at = at + 4
    elseif op == 'r' then
      result = changes.remove_key_quota(key, tonumber(ARGV[at + 2]))
      at = at + 3
    elseif op == 'i' then
      result = changes.init()
      at = at + 2
    else
      return redis.error_reply('paygo-redis: unknown operation ' .. tostring(op))
    end
    R = R + 1
    results[R] = #result
    for _, v in ipairs(result) do
      R = R + 1
      results[R] = v
    end
  end
end
results[2] = QLIST
return results
