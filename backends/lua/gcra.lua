-- bucketcore: one atomic GCRA decision over every limit of a call.
--
-- The arithmetic is bucketcore._gcra's, done exactly in Lua's doubles. A
-- bucket's state, its theoretical arrival time `tat`, is kept in two
-- integers: whole microseconds `us` and a remainder `frac` in [0, W), where
-- W is the number of GCRA units in one microsecond (1000 * units_per_ns).
-- The server's TIME is a whole number of microseconds, so `now` is
-- (now_us, 0) and every sum below stays an integer under 2^53:
--   now_us < 9e15 (until the year 2255), frac + frac < 2W <= 2^53, and
--   debts are at most the capacity, at most 2^50 us (the client checks both
--   bounds before it sends a limit, and clamps a cost to the capacity plus
--   one unit and a refund to 2^51 us: beyond those every answer is alike).
--
-- A value is '<dd' (tat_us, tat_frac) then the limit's signature, 24 opaque
-- bytes ('<QQQ': units_per_ns, token_units, burst) compared, never read,
-- here: 40 bytes. A drain that outlasts a refill adds its hold, '<dddd'
-- (held_until_us, held_for_us, and the limit's capacity less one token as
-- us, frac), 72 bytes, kept while the bucket is beyond empty: never held
-- more than held_for_us ahead of now (a clock step back). A 16-byte value
-- ('<dd', version 1) is taken as under the call's limit. A call under
-- another signature (a plan changed) is not decided here but answered
-- {-1, now_us, key, value, signature, ...} for each such bucket: the client
-- converts the state with _gcra.converted and stores it with mode "c"
-- (compare and set), then sends the call again.
--
-- One call: KEYS[i] is bucket i; ARGV[1] is the mode, one of
--   "a" acquire: take the cost from every bucket, or from none
--   "t" try:     the same, but an allowed call only answers 1
--   "p" peek:    decide, change nothing (but store a clamp)
--   "r" refund:  give the amount back, capped at full
--   "d" drain:   hold every bucket empty for amount_us (never fuller)
-- then for bucket i, ARGV[2i] and ARGV[2i+1]: its numbers, packed '<ddddd'
-- (W, amount_us, amount_frac: the cost, refund or drain in units; cap_us,
-- cap_frac: the capacity; a drain adds held_us, held_frac: the capacity
-- less one token), and its signature.
-- Reply (a, p, t denied): {now_us, allowed 0|1, debt_us_1, debt_frac_1, ...}
-- with each bucket's debt (start - now, before this call), from which the
-- client derives every Decision field with the same _gcra.evaluate that the
-- memory store uses. Refund and drain reply now_us.
-- "c" converted: ARGV[2..] = old value, new value, expiry ms for each key;
-- each is set if it still holds its old value; replies 1.
--
-- A bucket further ahead than an empty one (and than its hold) saw the
-- server clock step back: it is stored as an empty one, so the wait it
-- reports comes true, whatever the mode.
--
-- Many calls in one script run (acquire_many): ARGV[1] is "m", then per
-- call its mode ("a" or "p"), its number of buckets n and its 2n arguments,
-- its buckets next in KEYS. Every bucket's signature is checked before any
-- call is decided; then the calls are decided one after another, each
-- all-or-nothing on its own; the reply is {now_us} followed by each call's
-- {allowed, debts...}.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local unpack = struct.unpack
local find = string.find

local function corrupt()
  return redis.error_reply('BUCKETCORE corrupt bucket state')
end

-- Values read by `check` (false: none), kept current by `store`: one GET a bucket.
local cached = {}

-- Store a state (or delete a full one); the hold only while beyond empty.
local function store(key, sig, tat_us, tat_frac, cap_us, cap_frac, until_us, for_us, h_us, h_frac)
  local debt = tat_us - now
  if debt < 0 or (debt == 0 and tat_frac == 0) then
    redis.call('DEL', key)  -- full: a missing bucket is a full one
    cached[key] = false
    return
  end
  local value = struct.pack('<dd', tat_us, tat_frac) .. sig
  if for_us > 0 and (debt > cap_us or (debt == cap_us and tat_frac > cap_frac)) then
    value = value .. struct.pack('<dddd', until_us, for_us, h_us, h_frac)
  end
  -- Expire when full (rounded up, plus a millisecond for the script's own
  -- run time): a vanished bucket is a full one, so nothing is lost.
  -- (At most 2^40 ms: Lua writes it out as a whole number.)
  redis.call('SET', key, value, 'PX', math.floor(debt / 1000) + 2)
  cached[key] = value
end

-- The state of bucket `key`, clamped at now: start (us, frac) and the hold
-- (until_us, for_us, held_us, held_frac; for_us 0: none). Or false and the
-- value, kept under another signature (unless `checked` already); or nil
-- and an error reply.
local function load(key, sig, cap_us, cap_frac, checked)
  local value = cached[key]
  if value == nil then
    value = redis.call('GET', key)
  end
  local start_us, start_frac, until_us, for_us, h_us, h_frac = now, 0, 0, 0, 0, 0
  if value then
    local n, tat_us, tat_frac = #value
    if n == 40 or n == 72 then
      if not checked and find(value, sig, 17, true) ~= 17 then
        return false, value
      end
      if n == 72 then
        until_us, for_us, h_us, h_frac = unpack('<dddd', value, 41)
      end
    elseif n ~= 16 then
      return nil, corrupt()
    end
    tat_us, tat_frac = unpack('<dd', value)
    if tat_us >= now then
      start_us, start_frac = tat_us, tat_frac
    end
  end
  local ceil_us, ceil_frac = now + cap_us, cap_frac
  if for_us > 0 then
    until_us = math.min(until_us, now + for_us)
    local held_us = until_us + h_us
    if held_us > ceil_us or (held_us == ceil_us and h_frac > ceil_frac) then
      ceil_us, ceil_frac = held_us, h_frac
    end
  end
  if start_us > ceil_us or (start_us == ceil_us and start_frac > ceil_frac) then
    start_us, start_frac = ceil_us, ceil_frac
    store(key, sig, start_us, start_frac, cap_us, cap_frac, until_us, for_us, h_us, h_frac)
  end
  return start_us, start_frac, until_us, for_us, h_us, h_frac
end

-- Append {key, value, signature} to `stale` for each bucket of KEYS[k0+1 ..
-- k0+n] kept under another signature than the call's (arguments from a0).
local function check(k0, n, a0, stale)
  for i = 1, n do
    local key, sig = KEYS[k0 + i], ARGV[a0 + 2 * i]
    local value = redis.call('GET', key)
    cached[key] = value
    if value and (#value == 40 or #value == 72) and find(value, sig, 17, true) ~= 17 then
      stale[#stale + 1] = key
      stale[#stale + 1] = value
      stale[#stale + 1] = sig
    end
  end
end

-- Give ARGV's amounts back to KEYS[1..n] (mode "r"), or hold them empty (mode "d").
local function adjust(mode, n)
  for i = 1, n do
    local key, sig = KEYS[i], ARGV[2 * i + 1]
    local w, amount_us, amount_frac, cap_us, cap_frac, held_us, held_frac
    if mode == 'r' then
      w, amount_us, amount_frac, cap_us, cap_frac = unpack('<ddddd', ARGV[2 * i])
    else
      w, amount_us, amount_frac, cap_us, cap_frac, held_us, held_frac =
        unpack('<ddddddd', ARGV[2 * i])
    end
    local start_us, start_frac, until_us, for_us, h_us, h_frac =
      load(key, sig, cap_us, cap_frac, true)
    if start_us == nil then
      return start_frac  -- an error reply
    end
    if mode == 'r' then
      start_us, start_frac = start_us - amount_us, start_frac - amount_frac
      if start_frac < 0 then
        start_frac, start_us = start_frac + w, start_us - 1
      end
      store(key, sig, start_us, start_frac, cap_us, cap_frac, until_us, for_us, h_us, h_frac)
    elseif for_us == 0 or until_us < now + amount_us then  -- else held longer already
      local d_us, d_frac = now + amount_us + held_us, held_frac
      if d_us > start_us or (d_us == start_us and d_frac > start_frac) then
        start_us, start_frac = d_us, d_frac
      end
      store(key, sig, start_us, start_frac, cap_us, cap_frac, now + amount_us, amount_us,
        held_us, held_frac)
    end
  end
  return nil
end

-- Mode "c": each key set to its converted value if it still holds the old one.
local function converted()
  for i = 1, #KEYS do
    local j = 3 * i - 1
    if redis.call('GET', KEYS[i]) == ARGV[j] then
      if ARGV[j + 1] == '' then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], ARGV[j + 1], 'PX', ARGV[j + 2])
      end
    end
  end
  return 1
end

-- Decide one call on KEYS[k0+1 .. k0+n] with its bucket arguments from
-- ARGV[a0+1]; append {allowed, debts...} to reply. Returns allowed; or nil
-- and an error reply; or, unless `checked` already, false, nil and the
-- stale reply when a bucket is kept under another signature (nothing
-- stored then but clamps).
-- Scratch space for decide, shared by the calls of a run (each writes 1..n).
local after_us, after_frac = {}, {}

local function decide(mode, k0, n, a0, reply, checked)
  local at = #reply
  local allowed = true
  local stale
  for i = 1, n do
    local key, sig = KEYS[k0 + i], ARGV[a0 + 2 * i]
    local w, amount_us, amount_frac, cap_us, cap_frac = unpack('<ddddd', ARGV[a0 + 2 * i - 1])
    local start_us, start_frac = load(key, sig, cap_us, cap_frac, checked)
    if not start_us then
      if start_us == nil then
        return nil, start_frac
      end
      stale = stale or {-1, now}
      stale[#stale + 1] = key
      stale[#stale + 1] = start_frac
      stale[#stale + 1] = sig
    else
      reply[at + 2 * i] = start_us - now
      reply[at + 2 * i + 1] = start_frac
      local a_us, a_frac = start_us + amount_us, start_frac + amount_frac
      if a_frac >= w then
        a_frac = a_frac - w
        a_us = a_us + 1
      end
      local a_debt = a_us - now
      if a_debt > cap_us or (a_debt == cap_us and a_frac > cap_frac) then
        allowed = false
      end
      after_us[i], after_frac[i] = a_us, a_frac
    end
  end
  if stale then
    return false, nil, stale
  end
  reply[at + 1] = allowed and 1 or 0
  if allowed and mode ~= 'p' then
    for i = 1, n do
      store(KEYS[k0 + i], ARGV[a0 + 2 * i], after_us[i], after_frac[i], 0, 0, 0, 0, 0, 0)
    end
  end
  return allowed
end

local mode = ARGV[1]
if mode == 'c' then
  return converted()
end
if mode == 'm' or mode == 'r' or mode == 'd' then  -- every signature first: then change
  local stale = {-1, now}
  if mode == 'm' then
    local k0, a = 0, 2
    while a <= #ARGV do
      local n = tonumber(ARGV[a + 1])
      check(k0, n, a + 1, stale)
      k0, a = k0 + n, a + 2 + 2 * n
    end
  else
    check(0, #KEYS, 1, stale)
  end
  if #stale > 2 then
    return stale  -- nothing decided: the client converts, then asks again
  end
end
if mode == 'r' or mode == 'd' then
  return adjust(mode, #KEYS) or now
end
local reply = {now}
if mode == 'm' then
  local k0, a = 0, 2
  while a <= #ARGV do
    local n = tonumber(ARGV[a + 1])
    local ok, err = decide(ARGV[a], k0, n, a + 1, reply, true)
    if ok == nil then
      return err
    end
    k0, a = k0 + n, a + 2 + 2 * n
  end
  return reply
end
local allowed, err, stale = decide(mode, 0, #KEYS, 1, reply, false)
if allowed == nil then
  return err
end
if stale then
  return stale  -- nothing decided: the client converts, then asks again
end
if allowed and mode == 't' then
  return 1
end
return reply
