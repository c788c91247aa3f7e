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
-- The hot path (checks, adjustments) defines few functions: Redis runs the whole chunk on
-- every call, and each closure costs; the rest are made only for a batch that needs them.
-- A quota is "limit:period_ns:burst:interval_ns:window_bound"; a history "g,b;g,b;...".

local E9 = 1000000000
local DEBT_MAX = 4503599627370496 -- 2^52 ns, about 52 days
local HISTORY_LEN_MAX = 8
local GRACE_MS = 1000

local prefix = ARGV[1]
local L = tonumber(ARGV[2])
local DEFAULTS = { unpack(ARGV, 4, 3 + L) }

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
  return tonumber(string.sub(v, 1, len - 9)), tonumber(string.sub(v, len - 8))
end

-- An absolute time (decimal string) as nanoseconds after now (negative: before).
-- Exact within 2^53 of now; a time long past reads as some large negative number.
local function rel(v)
  local s, n = split(v)
  return (s - now_s) * E9 + (n - now_n)
end

-- Nanoseconds after now (0 <= r <= DEBT_MAX + 1) as an absolute decimal string.
local function abs(r)
  local q, n = idiv(now_n + r, E9)
  local s = now_s + q
  if s == 0 then
    return string.format('%d', n)
  end
  return string.format('%d%09d', s, n)
end

-- The absolute time, in whole milliseconds rounded up, of r nanoseconds after now.
local function abs_ms(r)
  local q, n = idiv(now_n + r, 1000000)
  local ms = now_s * 1000 + q
  if n > 0 then
    ms = ms + 1
  end
  return ms
end

-- ---------------------------------------------------------------- quotas

local quotas = {}

-- A quota string's burst and interval (cached).
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

-- ---------------------------------------------------------------- keys

local classes = {}

-- Limit numbers become text with an integer format: concatenating a Lua number formats it
-- as a float (slow, and '%.14g').
local function class_key(i)
  return prefix .. ':c:' .. string.format('%d', i)
end

local function own_key(i, key)
  return prefix .. ':o:' .. string.format('%d', i) .. ':' .. key
end

-- Limit i's class: its quota, history string, floor (relative) and how many keys have their
-- own quota, read once per batch.
local function class(i)
  local cached = classes[i]
  if cached then
    return cached
  end
  local v = redis.call('HMGET', class_key(i), 'q', 'h', 'f', 'o')
  if not v[1] then
    -- A new store, or a server that lost its data: the caller's default quota, no history.
    v = { DEFAULTS[i + 1], '', '0', '0' }
    redis.call('HSET', class_key(i), 'q', v[1], 'h', v[2], 'f', v[3], 'o', v[4])
  end
  local c = { q = quota(v[1]), h = v[2] or '', f = rel(v[3] or '0'), o = tonumber(v[4] or '0'),
    stem = prefix .. ':t:' .. string.format('%d', i) .. ':' }
  classes[i] = c
  return c
end

-- The state of the key an operation reads, limit i at index i + 1, in arrays reused from one
-- operation to the next (a table per check costs as much as a Redis call): its Redis key,
-- its TAT (relative), the quota in force, the floor its checks read (the class's, or false
-- for none: a key with its own quota), its own quota and history (or false).
local K_key, K_tat, K_q, K_floor, K_own, K_own_h = {}, {}, {}, {}, {}, {}

local function load(i, key)
  local c = class(i)
  local j = i + 1
  local tk = c.stem .. key
  K_key[j] = tk
  K_tat[j] = rel(redis.call('GET', tk) or '0')
  K_q[j] = c.q
  K_floor[j] = c.f
  K_own[j] = false
  if c.o > 0 then
    local v = redis.call('HMGET', own_key(i, key), 'q', 'h')
    if v[1] then
      K_own[j] = v[1]
      K_own_h[j] = v[2] or ''
      K_q[j] = quota(v[1])
      K_floor[j] = false
    end
  end
end

-- The TAT a decision reads for the loaded state of limit index j: at least the class floor.
local function effective_at(j)
  local f = K_floor[j]
  if f and f > K_tat[j] then
    return f
  end
  return K_tat[j]
end

-- The same as a table, for the operations that are not on the hot path.
local function state(i, key)
  load(i, key)
  local j = i + 1
  local s = { key = K_key[j], tat = K_tat[j], q = K_q[j], effective = effective_at(j) }
  if K_floor[j] then
    s.floor = K_floor[j]
  end
  if K_own[j] then
    s.own = K_own[j]
    s.own_h = K_own_h[j]
  end
  return s
end

-- ---------------------------------------------------------------- the answer

-- The answer is one flat list: the batch's time, the list of quotas the answers name (checks
-- and adjustments name a quota by its 1-based index in it: a quota's text is written once a
-- batch, not once a check), then each operation's result as its length and its items.
local results, R = {}, 0
local QLIST, QN = {}, 0

local function emit(v)
  R = R + 1
  results[R] = v
end

local function emit_table(t)
  emit(#t)
  for _, v in ipairs(t) do
    emit(v)
  end
end

-- The index of a quota in QLIST.
local function qindex(q)
  local qi = q.qi
  if not qi then
    QN = QN + 1
    QLIST[QN] = q.s
    q.qi = QN
    qi = QN
  end
  return qi
end

-- Writes a key's TAT (relative, under key k): stored when ahead of now, expiring a second
-- after the key is full again; dropped when full.
local function write_tat(k, r)
  if r <= 0 then
    redis.call('DEL', k)
  elseif test_time then
    redis.call('SET', k, abs(r), 'PX', '600000')
  else
    -- The expiry as text: a number argument would be formatted as a float.
    redis.call('SET', k, abs(r), 'PXAT', string.format('%d', abs_ms(r) + GRACE_MS))
  end
end

-- ---------------------------------------------------------------- decisions

-- remaining, the units admitted now at once at debt d: floor(max(cap - d, 0) / T).
local function remaining(q, d)
  if d >= q.cap then
    return 0
  end
  local units = idiv(q.cap - d, q.t)
  return units
end

-- ---------------------------------------------------------------- operations

-- Per-limit scratch of the hot path, reused like K_*.
local W, DEBT, FITS = {}, {}, {}

-- A check, all or nothing; the weights are ARGV[base + 1 .. base + L]. Emits
-- 2 + 5L, 'ok', allowed, then per limit: quota index, allowed, remaining, reset (debt after,
-- ns), retry after (ns, -1 for none); or 3, 'W', limit, quota text for a weight above a burst.
local function op_check(key, base)
  for i = 1, L do
    load(i - 1, key)
    local w = tonumber(ARGV[base + i])
    if w > K_q[i].burst then
      emit(3)
      emit('W')
      emit(i - 1)
      emit(K_q[i].s)
      return
    end
    W[i] = w
  end
  local allowed = 1
  for i = 1, L do
    local q = K_q[i]
    local debt = effective_at(i)
    if debt < 0 then
      debt = 0
    end
    DEBT[i] = debt
    local fits = debt <= q.cap - W[i] * q.t
    FITS[i] = fits
    if W[i] > 0 and not fits then
      allowed = 0
    end
  end
  emit(2 + 5 * L)
  emit('ok')
  emit(allowed)
  for i = 1, L do
    local q, w, debt = K_q[i], W[i], DEBT[i]
    local a, reset, retry = 1, debt, -1
    if w > 0 and allowed == 1 then
      reset = debt + w * q.t
      write_tat(K_key[i], reset)
    elseif w > 0 and not FITS[i] then
      a = 0
      retry = debt - (q.cap - w * q.t)
    end
    emit(qindex(q))
    emit(a)
    emit(remaining(q, reset))
    emit(reset)
    emit(retry)
  end
end

-- An adjustment (reserve-then-adjust); the deltas are ARGV[base + 1 .. base + L]. Emits
-- 1 + 3L, 'ok', then per limit: quota index, remaining, debt (ns); or 2, 'A', limit when a
-- debt would pass DEBT_MAX (nothing written then).
local function op_adjust(key, base)
  for i = 1, L do
    load(i - 1, key)
    local q = K_q[i]
    local delta = tonumber(ARGV[base + i])
    local debt = effective_at(i)
    if debt < 0 then
      debt = 0
    end
    if delta > 0 then
      local amount = delta * q.t
      if amount > DEBT_MAX or debt + amount > DEBT_MAX then
        emit(2)
        emit('A')
        emit(i - 1)
        return
      end
      debt = debt + amount
    elseif delta < 0 then
      local amount = math.min(-delta, DEBT_MAX) * q.t
      debt = math.max(debt - amount, 0)
      local f = K_floor[i]
      if f and f > debt then
        debt = f
      end
    end
    W[i] = delta
    DEBT[i] = debt
  end
  emit(1 + 3 * L)
  emit('ok')
  for i = 1, L do
    local q, debt = K_q[i], DEBT[i]
    if W[i] ~= 0 then
      write_tat(K_key[i], debt)
    end
    emit(qindex(q))
    emit(remaining(q, debt))
    emit(debt)
  end
end

local function op_quota(key, i)
  return { 'ok', state(i, key).q.s }
end

-- ---------------------------------------------------------------- runtime changes

-- The functions of quota changes, made only for a batch that changes a quota.
local function admin()
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
  local t = redis.call('TIME')
  now_s = tonumber(t[1])
  now_n = tonumber(t[2]) * 1000
  -- Never before an earlier batch's time (a server clock stepped back).
  local last = redis.call('GET', KEYS[1])
  if last and rel(last) > 0 then
    now_s, now_n = split(last)
  end
  redis.call('SET', KEYS[1], abs(0))
end

emit(abs(0))
emit(QLIST)
local changes = nil
local at = 4 + L
while at <= #ARGV do
  local op, key = ARGV[at], ARGV[at + 1]
  local result = nil
  if op == 'c' then
    op_check(key, at + 1)
    at = at + 2 + L
  elseif op == 'a' then
    op_adjust(key, at + 1)
    at = at + 2 + L
  elseif op == 'q' then
    result = op_quota(key, tonumber(ARGV[at + 2]))
    at = at + 3
  elseif op == 's' then
    changes = changes or admin()
    result = changes.set_quota(tonumber(ARGV[at + 2]), ARGV[at + 3])
    at = at + 4
  elseif op == 'k' then
    changes = changes or admin()
    result = changes.set_key_quota(key, tonumber(ARGV[at + 2]), ARGV[at + 3])
    at = at + 4
  elseif op == 'r' then
    changes = changes or admin()
    result = changes.remove_key_quota(key, tonumber(ARGV[at + 2]))
    at = at + 3
  elseif op == 'i' then
    changes = changes or admin()
    result = changes.init()
    at = at + 2
  else
    return redis.error_reply('paygo-redis: unknown operation ' .. tostring(op))
  end
  if result then
    emit_table(result)
  end
end
return results
