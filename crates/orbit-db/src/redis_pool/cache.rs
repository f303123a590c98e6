//! `RedisCache`: ConCache-style get/put/TTL kept in Redis, so every node that uses the
//! same Redis sees the same entries and the same expiry.
//!
//! Keys live under a prefix (`"{prefix}:{key}"`). An entry's TTL is Redis's (`PX`), so
//! an expired entry is missing at once for every reader, as ConCache's. Values are any
//! redis-rs `ToRedisArgs`/`FromRedisValue` type (strings, integers, bytes).
//! [`RedisCache::get_or_store`] computes a missing value and stores it with
//! `SET … NX GET` (Redis 7): when several callers (on any node) compute the same key at
//! once, the first stored value wins and every caller returns it. Unlike ConCache's
//! per-key lock, concurrent callers may each run the computation.

use std::future::Future;
use std::time::Duration;

use ::redis::{FromRedisValue, ToRedisArgs};

use super::RedisPool;
use crate::error::DbError;

/// A cache in Redis with a default TTL.
#[derive(Debug, Clone)]
pub struct RedisCache {
    pool: RedisPool,
    prefix: String,
    ttl: Option<Duration>,
}

impl RedisCache {
    /// A cache under `prefix`; entries expire after `ttl` unless put with their own
    /// (`None`: never).
    pub fn new(pool: RedisPool, prefix: impl Into<String>, ttl: Option<Duration>) -> Self {
        RedisCache {
            pool,
            prefix: prefix.into(),
            ttl,
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{}", self.prefix, key)
    }

    /// The value under `key`, `None` when missing or expired.
    pub async fn get<V: FromRedisValue + Send>(&self, key: &str) -> Result<Option<V>, DbError> {
        self.pool
            .query(::redis::cmd("GET").arg(self.key(key)))
            .await
    }

    /// Stores `value` under `key` with the cache's TTL.
    pub async fn put<V: ToRedisArgs + Send + Sync>(
        &self,
        key: &str,
        value: V,
    ) -> Result<(), DbError> {
        self.put_ttl(key, value, self.ttl).await
    }

    /// Stores `value` under `key`, expiring after `ttl` (`None`: never).
    pub async fn put_ttl<V: ToRedisArgs + Send + Sync>(
        &self,
        key: &str,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<(), DbError> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl)?);
        }
        self.pool.query::<()>(&cmd).await
    }

    /// Removes `key`; true if it was there.
    pub async fn delete(&self, key: &str) -> Result<bool, DbError> {
        let n: i64 = self
            .pool
            .query(::redis::cmd("DEL").arg(self.key(key)))
            .await?;
        Ok(n > 0)
    }

    /// The time `key` has left: `None` when missing or without expiry.
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, DbError> {
        let ms: i64 = self
            .pool
            .query(::redis::cmd("PTTL").arg(self.key(key)))
            .await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    /// The value under `key`, or `make()`'s value stored with the cache's TTL; when
    /// another caller stored one first, that value is returned.
    pub async fn get_or_store<V, F, Fut>(&self, key: &str, make: F) -> Result<V, DbError>
    where
        V: ToRedisArgs + FromRedisValue + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        if let Some(v) = self.get::<V>(key).await? {
            return Ok(v);
        }
        let value = make().await;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(&value).arg("NX").arg("GET");
        if let Some(ttl) = self.ttl {
            cmd.arg("PX").arg(ttl_ms(ttl)?);
        }
        let previous: Option<V> = self.pool.query(&cmd).await?;
        Ok(previous.unwrap_or(value))
    }
}

/// A TTL in whole milliseconds (Redis refuses 0).
fn ttl_ms(ttl: Duration) -> Result<u64, DbError> {
    let ms = ttl.as_millis();
    if ms == 0 || ms > i64::MAX as u128 {
        return Err(DbError::InvalidOptions(
            "a cache TTL must be between 1 ms and i64::MAX ms; use None for no expiry",
        ));
    }
    Ok(ms as u64)
}
