-- One exchange of novita-core's shared state, atomically (src/script.rs builds the call).
--
-- KEYS[1]   the account's retry budget: a string, the balance.
-- KEYS[2]   the exchange's model: a hash of absolute Redis times in microseconds,
--           fields blocked, maintenance, open (when each fact ends) and requests, tokens
--           (the GCRA theoretical arrival times).
-- KEYS[3..] every other model the news names, the same hash.
--
-- ARGV[1]   "" to read the clock with TIME; otherwise the time in microseconds, a test
--           clock only (RedisStore::run_blocking_at, feature testing), never sent by the
--           stores.
-- ARGV[2]   the budget's delta; ARGV[3] its capacity.
-- ARGV[4,5] the requests step's increment and tolerance in µs, "" when not charged;
-- ARGV[6,7] the tokens step's.
-- ARGV[8]   how many news follow, each
--           F <key index> <blocked µs> <maintenance µs> <open µs>
--           R <key index>
--           C <key index> <requests by µs> <back 0|1> <ceiling µs> <tokens by> <back> <ceiling>
--           (an absent shift is three "").
--
-- Returns {blocked µs left, maintenance µs left, open µs left, budget balance,
--          0 charged | 1 held by requests | 2 held by tokens, µs to wait}.
--
-- Numbers are Lua doubles: Redis times in µs (about 2^50.6 in 2026) and the bounded
-- durations the client sends stay below 2^53, so every sum here is exact. They are
-- written back with %.0f, because Lua's tostring keeps only 14 significant digits.

local function number(arg)
  if arg == nil or arg == '' then
    return nil
  end
  return tonumber(arg)
end

local function text(value)
  return string.format('%.0f', value)
end

local now = number(ARGV[1])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local FIELDS = { 'blocked', 'maintenance', 'open', 'requests', 'tokens' }
local FACTS = { 'blocked', 'maintenance', 'open' }

-- The models' hashes, read once each, by KEYS index; `changed` marks those to write.
local models = {}
local function model(index)
  local state = models[index]
  if state == nil then
    local stored = redis.call('HMGET', KEYS[index], unpack(FIELDS))
    state = { changed = false }
    for i, field in ipairs(FIELDS) do
      -- A missing field reads as false, which tonumber turns into nil: never set.
      state[field] = tonumber(stored[i]) or 0
    end
    models[index] = state
  end
  return state
end

-- Gcra::correct: move by the shift, never below now nor past max(tat, now + ceiling).
local function shift(state, field, by, back, ceiling)
  by = number(by)
  if by == nil then
    return
  end
  local tat = state[field]
  local moved = tat + by
  if back == '1' then
    moved = tat - by
  end
  local most = math.max(tat, now + tonumber(ceiling))
  state[field] = math.min(math.max(moved, now), most)
  state.changed = true
end

-- The news, in the order the client learnt it.
local at = 9
for _ = 1, tonumber(ARGV[8]) do
  local kind = ARGV[at]
  local state = model(tonumber(ARGV[at + 1]))
  if kind == 'F' then
    for i, field in ipairs(FACTS) do
      local until_ = now + tonumber(ARGV[at + 1 + i])
      if until_ > now and until_ > state[field] then
        state[field] = until_
        state.changed = true
      end
    end
    at = at + 5
  elseif kind == 'R' then
    -- The model answered: maintenance and the open breaker end; a server's hint stands.
    if state.maintenance ~= 0 or state.open ~= 0 then
      state.maintenance = 0
      state.open = 0
      state.changed = true
    end
    at = at + 2
  elseif kind == 'C' then
    shift(state, 'requests', ARGV[at + 2], ARGV[at + 3], ARGV[at + 4])
    shift(state, 'tokens', ARGV[at + 5], ARGV[at + 6], ARGV[at + 7])
    at = at + 8
  else
    return redis.error_reply('novita: unknown news kind ' .. tostring(kind))
  end
end

-- The retry budget, full the first time it is seen.
local capacity = tonumber(ARGV[3])
local balance = tonumber(redis.call('GET', KEYS[1])) or capacity
balance = math.min(math.max(balance + tonumber(ARGV[2]), 0), capacity)
-- A day without any exchange and the account's budget starts over full, as a client
-- starting afresh would: the balance only smooths retries across processes, and keeping
-- it longer would only keep keys of abandoned accounts.
redis.call('SET', KEYS[1], text(balance), 'PX', 86400000)

-- The charge: GCRA on every dimension asked for, all or nothing.
local state = model(2)
local held_by, wait = 0, 0
local requests_increment, tokens_increment = number(ARGV[4]), number(ARGV[6])
local function hold(tat, increment, tolerance)
  -- A call dearer than the tolerance goes once the TAT has caught up with now.
  local allowed_at = tat - math.max(0, tolerance - increment)
  return math.max(0, allowed_at - now)
end
local requests_wait, tokens_wait = 0, 0
if requests_increment ~= nil then
  requests_wait = hold(state.requests, requests_increment, tonumber(ARGV[5]))
end
if tokens_increment ~= nil then
  tokens_wait = hold(state.tokens, tokens_increment, tonumber(ARGV[7]))
end
if requests_wait == 0 and tokens_wait == 0 then
  if requests_increment ~= nil then
    state.requests = math.max(state.requests, now) + requests_increment
    state.changed = true
  end
  if tokens_increment ~= nil then
    state.tokens = math.max(state.tokens, now) + tokens_increment
    state.changed = true
  end
elseif tokens_wait > requests_wait then
  held_by, wait = 2, tokens_wait
else
  held_by, wait = 1, requests_wait
end

-- Write back what changed. Once every end and TAT of a model is past, its hash reads
-- exactly as an absent one would (past ends are over, a past TAT is an idle limit), so it
-- may go: it expires two minutes after the latest of them, the margin covering a failover
-- to a replica whose clock runs slightly behind. Abandoned models and accounts so leave
-- nothing behind.
for index, changed in pairs(models) do
  if changed.changed then
    local latest = now
    local pairs_ = {}
    for _, field in ipairs(FIELDS) do
      latest = math.max(latest, changed[field])
      table.insert(pairs_, field)
      table.insert(pairs_, text(changed[field]))
    end
    redis.call('HSET', KEYS[index], unpack(pairs_))
    redis.call('PEXPIRE', KEYS[index], text(math.ceil((latest - now) / 1000) + 120000))
  end
end

return {
  math.max(0, state.blocked - now),
  math.max(0, state.maintenance - now),
  math.max(0, state.open - now),
  balance,
  held_by,
  wait,
}
