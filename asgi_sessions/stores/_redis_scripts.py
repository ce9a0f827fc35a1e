"""The Lua scripts behind RedisStore's atomic steps, one constant per step.

Each script touches one record key, one index key, or keys of one cluster slot, so it
runs atomically on a single server and on a Redis Cluster alike. Times are microseconds
since the epoch by the store's clock, passed in as "now"; TTLs are milliseconds.
"""

from __future__ import annotations

__all__ = ["CREATE", "DESTROY", "DROP", "EXTEND", "UNINDEX", "UPDATE"]

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
# ('1'/'0'), field/value pairs. 0: refused; 1: index the new owner first; else old owner.
UPDATE = """
local cur = redis.call('HMGET', KEYS[1], 'expires_at', 'version', 'user_id')
if not cur[1] or tonumber(cur[1]) <= tonumber(ARGV[1]) or cur[2] ~= ARGV[3] then return 0 end
local owner = cur[3] and ('=' .. cur[3]) or '-'
if owner ~= ARGV[4] and ARGV[4] ~= '-' and ARGV[5] == '0' then return 1 end
if ARGV[4] == '-' then redis.call('HDEL', KEYS[1], 'user_id') end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return owner
"""

# KEYS[1] record; ARGV now, ttl ms, new expires_at. Moves a live record's expiry only.
EXTEND = """
local expires = redis.call('HGET', KEYS[1], 'expires_at')
if not expires or tonumber(expires) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] record. Deletes it and returns its user_id (nil if none), to unlink the index.
DESTROY = """
local user_id = redis.call('HGET', KEYS[1], 'user_id')
redis.call('DEL', KEYS[1])
return user_id
"""

# KEYS: records of one slot. Deletes those expired at ARGV[2] or owned by user ARGV[2].
DROP = """
local n = 0
for _, key in ipairs(KEYS) do
  local f = redis.call('HMGET', key, 'expires_at', 'user_id')
  local hit = f[2] == ARGV[2]
  if ARGV[1] == 'expired' then hit = f[1] and tonumber(f[1]) <= tonumber(ARGV[2]) end
  if hit then redis.call('DEL', key); n = n + 1 end
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
