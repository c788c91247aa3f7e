-- The floor of a paygo check inside Redis (benches/redis/script_cost.py; docs/ratelimit.md,
-- "Figures"): one batch of checks with everything paygo's script does for a check -- Redis
-- TIME, the monotonic `{p}:now`, the limit's class (quota in force, own-quota count), the
-- key's TAT in exact nanoseconds as text, GCRA, the write with its expiry, the flat answer --
-- and nothing else: no helper defined, no quota change, no own-quota or floor path. Not used
-- by paygo; a measuring stick for crates/paygo-redis/src/limiter.lua, same arguments.
local E9 = 1000000000
local prefix = ARGV[1]
local L = tonumber(ARGV[2])
local floor, format, sub, tonumber, call = math.floor, string.format, string.sub, tonumber, redis.call
local now_s, now_n
local t = call('TIME')
now_s = tonumber(t[1])
now_n = tonumber(t[2]) * 1000
local last = call('GET', KEYS[1])
if last then
  local len = #last
  local s, n
  if len <= 9 then s, n = 0, tonumber(last) else s, n = tonumber(sub(last, 1, len - 9)), tonumber(sub(last, len - 8)) end
  if s > now_s or (s == now_s and n > now_n) then now_s, now_n = s, n end
end
local NOW = format('%d%09d', now_s, now_n)
call('SET', KEYS[1], NOW)
local results, R = { NOW, false }, 2
local QLIST, QN = {}, 0
local classes = {}
local K_key, K_tat, K_q, W, DEBT = {}, {}, {}, {}, {}
local at = 4 + L
local nargs = #ARGV
while at <= nargs do
  local op, key = ARGV[at], ARGV[at + 1]
  if op == 'c' then
    local refused = false
    for i = 1, L do
      local c = classes[i]
      if not c then
        local ck = prefix .. ':c:' .. format('%d', i - 1)
        local v = call('HMGET', ck, 'q', 'h', 'f', 'o')
        local _, _, burst, tt = string.match(v[1], '^(%d+):(%d+):(%d+):(%d+):[01]$')
        c = { s = v[1], burst = tonumber(burst), t = tonumber(tt), stem = prefix .. ':t:' .. format('%d', i - 1) .. ':', f = 0, o = tonumber(v[4]) }
        c.cap = c.burst * c.t
        classes[i] = c
      end
      local tk = c.stem .. key
      local v = call('GET', tk)
      local r
      if v then
        local len = #v
        if len <= 9 then r = (0 - now_s) * E9 + (tonumber(v) - now_n)
        else r = (tonumber(sub(v, 1, len - 9)) - now_s) * E9 + (tonumber(sub(v, len - 8)) - now_n) end
      else
        r = 0
      end
      K_key[i], K_tat[i], K_q[i] = tk, r, c
      local w = tonumber(ARGV[at + 1 + i])
      if w > c.burst then refused = true end
      W[i] = w
    end
    local allowed = 1
    for i = 1, L do
      local q = K_q[i]
      local d = K_tat[i]
      if d < 0 then d = 0 end
      DEBT[i] = d
      if W[i] > 0 and d > q.cap - W[i] * q.t then allowed = 0 end
    end
    R = R + 1; results[R] = 2 + 5 * L
    R = R + 1; results[R] = 'ok'
    R = R + 1; results[R] = allowed
    for i = 1, L do
      local q, w, d = K_q[i], W[i], DEBT[i]
      local a, reset, retry = 1, d, -1
      if w > 0 and allowed == 1 then
        reset = d + w * q.t
        local x = now_n + reset
        local qq = floor(x / E9)
        local n = x - qq * E9
        if n < 0 then qq = qq - 1; n = n + E9 elseif n >= E9 then qq = qq + 1; n = n - E9 end
        local ms = floor(n / 1000000)
        local ms_r = n - ms * 1000000
        if ms_r > 0 then ms = ms + 1 end
        call('SET', K_key[i], format('%d%09d', now_s + qq, n), 'PXAT', format('%d', (now_s + qq) * 1000 + ms + 1000))
      elseif w > 0 then
        a = 0
        retry = d - (q.cap - w * q.t)
      end
      local qi = q.qi
      if not qi then QN = QN + 1; QLIST[QN] = q.s; q.qi = QN; qi = QN end
      R = R + 1; results[R] = qi
      R = R + 1; results[R] = a
      local rem = 0
      if reset < q.cap then rem = floor((q.cap - reset) / q.t) end
      R = R + 1; results[R] = rem
      R = R + 1; results[R] = reset
      R = R + 1; results[R] = retry
    end
    at = at + 2 + L
  else
    return redis.error_reply('x')
  end
end
results[2] = QLIST
return results
