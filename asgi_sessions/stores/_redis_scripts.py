"""The Lua scripts behind RedisStore's atomic steps, one constant per step.

Each script touches one record key, one index key, or keys of one cluster slot, so it
runs atomically on a single server and on a Redis Cluster alike. Times are microseconds
since the epoch; "now" comes in from the store's clock, and the scripts that write also
read the server's own clock (TIME), taking the later of the two so that a store whose
clock runs slow never revives a record. TTLs are milliseconds.
"""

from __future__ import annotations

__all__ = [
    "CREATE",
    "DESTROY",
    "DROP_EXPIRED",
    "DROP_OWNED",
    "EXTEND",
    "IMPORT",
    "LINK",
    "MARK_BEGIN",
    "MARK_DONE",
    "UNINDEX",
    "UNLOCK",
    "UPDATE",
]

# The later of ARGV[1] (the store's now) and the server's clock, in microseconds.
_WRITE_NOW = """
local time = redis.call('TIME')
local now = math.max(tonumber(ARGV[1]), tonumber(time[1]) * 1000000 + tonumber(time[2]))
"""

# KEYS: records of one slot; ARGV[1] now, then one argument per key, its ttl ms, version
# and field/value items packed as netstrings ("<length>:<bytes>" each), so a batch costs
# the client one argument per record. A migration's copies; per key 1 copied (no live
# record), 2 replaced (a live one of an older version), 0 skipped.
IMPORT = """
local now, outcomes = tonumber(ARGV[1]), {}
for i, key in ipairs(KEYS) do
  local packed, items, pos = ARGV[i + 1], {}, 1
  while pos <= #packed do
    local colon = string.find(packed, ':', pos, true)
    local n = tonumber(string.sub(packed, pos, colon - 1))
    items[#items + 1] = string.sub(packed, colon + 1, colon + n)
    pos = colon + n + 1
  end
  local cur = redis.call('HMGET', key, 'expires_at', 'version')
  local live = cur[1] and tonumber(cur[1]) > now
  if live and tonumber(cur[2]) >= tonumber(items[2]) then
    outcomes[i] = 0
  else
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(items, 3))
    redis.call('PEXPIRE', key, items[1])
    outcomes[i] = live and 2 or 1
  end
end
return outcomes
"""

# KEYS: user indexes of one slot; ARGV per key: the number of entries, then score/member
# pairs. Adds (or re-scores) each entry, one ZADD per index.
LINK = """
local at = 1
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  redis.call('ZADD', key, unpack(ARGV, at + 1, at + 2 * n))
  at = at + 1 + 2 * n
end
return 0
"""

# KEYS[1] record; ARGV now, ttl ms, then field/value pairs. Takes only a dead record's key.
CREATE = """
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if expires and tonumber(expires) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# ARGV now, ttl ms, expected version, new owner ('-' or '=' .. user_id), owner indexed
# ('1'/'0'), field/value pairs. 0: refused; 1: index the new owner first; 2: written.
# A former owner's index entry stays: cleanup drops it once due (see RedisStore).
UPDATE = (
    _WRITE_NOW
    + """
local cur = redis.call('HMGET', KEYS[1], 'expires_at', 'version', 'user_id')
if not cur[1] or tonumber(cur[1]) <= now or cur[2] ~= ARGV[3] then return 0 end
local owner = cur[3] and ('=' .. cur[3]) or '-'
if owner ~= ARGV[4] and ARGV[4] ~= '-' and ARGV[5] == '0' then return 1 end
if ARGV[4] == '-' then redis.call('HDEL', KEYS[1], 'user_id') end
redis.call('HDEL', KEYS[1], 'user_agent', 'ip', 'last_seen_at')
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 2
"""
)

# KEYS[1] record; ARGV now, ttl ms, new expires_at, expected version ('' for any), when
# it was seen ('' to leave last_seen_at). Moves a live record's expiry; 1 if it moved.
EXTEND = (
    _WRITE_NOW
    + """
local cur = redis.call('HMGET', KEYS[1], 'expires_at', 'version')
if not cur[1] or tonumber(cur[1]) <= now then return 0 end
if ARGV[4] ~= '' and cur[2] ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS[1] record; ARGV now, expected version ('' for any). Deletes the record (with a
# version, only a live one of that version) and returns {was it live (1/0), its owner
# ('-' or '=' .. user_id)} so the caller can unlink the index; 0 if nothing was deleted.
DESTROY = """
local cur = redis.call('HMGET', KEYS[1], 'expires_at', 'version', 'user_id')
if not cur[1] then return 0 end
local live = tonumber(cur[1]) > tonumber(ARGV[1])
if ARGV[2] ~= '' and (not live or cur[2] ~= ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
return {live and 1 or 0, cur[3] and ('=' .. cur[3]) or '-'}
"""

# KEYS: records of one slot; ARGV[1] a time. Deletes those expired at or before it.
DROP_EXPIRED = """
local n = 0
for _, key in ipairs(KEYS) do
  local expires = redis.call('HGET', key, 'expires_at')
  if expires and tonumber(expires) <= tonumber(ARGV[1]) then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""

# KEYS: records of one slot; ARGV[1] a user id. Deletes those that user owns, live or not.
DROP_OWNED = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'user_id') == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""

# KEYS[1] index; ARGV member/score pairs: removes a member only if its score is unchanged,
# so an entry re-added meanwhile by create or update survives.
UNINDEX = """
for i = 1, #ARGV, 2 do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 0
"""

# KEYS: completeness marks of one slot; ARGV[1] a repair's id. A mark not 'ok' now names
# this repair, so only the last repair to begin may call it complete.
MARK_BEGIN = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= 'ok' then redis.call('SET', key, ARGV[1]) end
end
return 0
"""

# KEYS: completeness marks of one slot; ARGV[1] a repair's id. A mark still naming this
# repair becomes 'ok'; one that vanished (its node lost its data meanwhile) stays absent.
MARK_DONE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('SET', key, 'ok')
    n = n + 1
  end
end
return n
"""

# KEYS[1] a user's lock; ARGV[1] its holder's token. Releases it only for its holder.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
