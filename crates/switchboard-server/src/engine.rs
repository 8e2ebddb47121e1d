//! Building the engine a configuration names. The Redis engine is behind the `redis` cargo
//! feature (on by default): an application that embeds Switchboard on the memory engine, or
//! brings its own engine (`Switchboard::start_with_engine`), builds without Redis.

use std::sync::Arc;

use switchboard_core::{Engine, MemoryEngine};

use crate::ServerError;
use crate::config::{Config, EngineKind};

/// The engine `config.engine` names.
///
/// # Errors
/// [`ServerError::Engine`] when Redis cannot be reached, or this build has no Redis support.
pub(crate) async fn build(config: &Config) -> Result<Arc<dyn Engine>, ServerError> {
    match config.engine {
        EngineKind::Memory => Ok(Arc::new(MemoryEngine::with_meta_ttl(config.meta_ttl))),
        EngineKind::Redis => redis(config).await,
    }
}

#[cfg(feature = "redis")]
async fn redis(config: &Config) -> Result<Arc<dyn Engine>, ServerError> {
    let rc = switchboard_redis::RedisConfig {
        url: config.redis_url.clone(),
        prefix: config.redis_prefix.clone(),
        cluster: config.redis_cluster,
        meta_ttl: config.meta_ttl,
        ..Default::default()
    };
    let engine = switchboard_redis::RedisEngine::connect(rc)
        .await
        .map_err(|e| ServerError::Engine(e.to_string()))?;
    Ok(Arc::new(engine))
}

#[cfg(not(feature = "redis"))]
async fn redis(_config: &Config) -> Result<Arc<dyn Engine>, ServerError> {
    Err(ServerError::Engine(
        "this build has no Redis support (cargo feature `redis` of switchboard-server)".into(),
    ))
}
