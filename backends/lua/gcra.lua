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
-- One call: KEYS[i] is bucket i; ARGV[1] is the mode, one of
--   "a" acquire: take the cost from every bucket, or from none
--   "t" try:     the same, but an allowed call only answers 1
--   "p" peek:    decide, change nothing
--   "r" refund:  give the amount back, capped at full
-- then for bucket i, ARGV[5*i-3 .. 5*i+1]:
--   W, amount_us, amount_frac (cost or refund, in units), cap_us, cap_frac
-- Reply (a, p, t denied): {now_us, allowed 0|1, debt_us_1, debt_frac_1, ...}
-- with each bucket's debt (start - now, before this call), from which the
-- client derives every Decision field with the same _gcra.evaluate that the
-- memory store uses. Refund replies now_us.
--
-- Many calls in one script run (acquire_many): ARGV[1] is "m", then per
-- call its mode ("a" or "p"), its number of buckets n and its 5n arguments,
-- its buckets next in KEYS. The calls are decided one after another, each
-- all-or-nothing on its own; the reply is {now_us} followed by each call's
-- {allowed, debts...}.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local function corrupt()
  return redis.error_reply('BUCKETCORE corrupt bucket state')
end

-- Give ARGV's amounts back to KEYS[1..n]; nil, or an error reply.
local function refund(n)
  for i = 1, n do
    local j = 5 * i - 3
    local value = redis.call('GET', KEYS[i])
    if value then
      if #value ~= 16 then
        return corrupt()
      end
      local w = tonumber(ARGV[j])
      local tat_us, tat_frac = struct.unpack('<dd', value)
      tat_us = tat_us - tonumber(ARGV[j + 1])
      tat_frac = tat_frac - tonumber(ARGV[j + 2])
      if tat_frac < 0 then
        tat_frac = tat_frac + w
        tat_us = tat_us - 1
      end
      if tat_us < now or (tat_us == now and tat_frac == 0) then
        redis.call('DEL', KEYS[i])  -- full again: a missing bucket is a full one
      else
        redis.call('SET', KEYS[i], struct.pack('<dd', tat_us, tat_frac), 'KEEPTTL')
      end
    end
  end
  return nil
end

-- Decide one call on KEYS[k0+1 .. k0+n] with its bucket arguments from
-- ARGV[a0+1]; append {allowed, debts...} to reply. Returns allowed, or nil
-- and an error reply.
-- Scratch space for decide, shared by the calls of a run (each writes 1..n).
local after_us, after_frac, after_debt = {}, {}, {}

local function decide(mode, k0, n, a0, reply)
  local at = #reply
  local allowed = true
  for i = 1, n do
    local j = a0 + 5 * i - 4
    local w = tonumber(ARGV[j])
    local cap_us, cap_frac = tonumber(ARGV[j + 3]), tonumber(ARGV[j + 4])
    local start_us, start_frac = now, 0
    local value = redis.call('GET', KEYS[k0 + i])
    if value then
      if #value ~= 16 then
        return nil, corrupt()
      end
      local tat_us, tat_frac = struct.unpack('<dd', value)
      if tat_us >= now then
        start_us, start_frac = tat_us, tat_frac
      end
    end
    local debt_us = start_us - now
    -- A debt above the capacity can only come from the server clock stepping
    -- back: count the bucket as empty now, never as holding negative tokens.
    if debt_us > cap_us or (debt_us == cap_us and start_frac > cap_frac) then
      debt_us, start_us, start_frac = cap_us, now + cap_us, cap_frac
    end
    reply[at + 2 * i] = debt_us
    reply[at + 2 * i + 1] = start_frac
    local a_us = start_us + tonumber(ARGV[j + 1])
    local a_frac = start_frac + tonumber(ARGV[j + 2])
    if a_frac >= w then
      a_frac = a_frac - w
      a_us = a_us + 1
    end
    local a_debt = a_us - now
    if a_debt > cap_us or (a_debt == cap_us and a_frac > cap_frac) then
      allowed = false
    end
    after_us[i], after_frac[i], after_debt[i] = a_us, a_frac, a_debt
  end
  reply[at + 1] = allowed and 1 or 0
  if allowed and mode ~= 'p' then
    for i = 1, n do
      -- Expire when full (rounded up, plus a millisecond for the script's
      -- own run time): a vanished bucket is a full one, so nothing is lost.
      -- (At most 2^40 ms: Lua writes it out as a whole number.)
      redis.call('SET', KEYS[k0 + i], struct.pack('<dd', after_us[i], after_frac[i]),
        'PX', math.floor(after_debt[i] / 1000) + 2)
    end
  end
  return allowed
end

local mode = ARGV[1]
if mode == 'r' then
  return refund(#KEYS) or now
end
local reply = {now}
if mode == 'm' then
  local k0, a = 0, 2
  while a <= #ARGV do
    local n = tonumber(ARGV[a + 1])
    local ok, err = decide(ARGV[a], k0, n, a + 1, reply)
    if err then
      return err
    end
    k0, a = k0 + n, a + 2 + 5 * n
  end
  return reply
end
local allowed, err = decide(mode, 0, #KEYS, 1, reply)
if err then
  return err
end
if allowed and mode == 't' then
  return 1
end
return reply
