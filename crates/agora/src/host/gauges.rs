//! What a host's `/metrics` reads at each scrape: for every member its
//! outbox backlog and storage pool, the breakers' states, and the depth of
//! each consuming member's queue.

use std::sync::Arc;

use agora_platform::breaker::Breaker;
use agora_platform::metrics::{self, Gauges};
use agora_platform::transport::Transport;
use agora_platform::{outbox, Db};
use async_trait::async_trait;

pub struct HostGauges {
    pub dbs: Vec<(&'static str, Db)>,
    pub breakers: Vec<(&'static str, Arc<Breaker>)>,
    pub transport: Arc<dyn Transport>,
    pub consumers: Vec<String>,
}

#[async_trait]
impl Gauges for HostGauges {
    async fn update(&self) {
        for (service, db) in &self.dbs {
            if let Ok((backlog, age)) = outbox::backlog(db).await {
                metrics::outbox(service, backlog, age);
            }
            metrics::pool(service, db.pool_usage());
        }
        for (service, breaker) in &self.breakers {
            metrics::breaker_state(service, breaker.name(), breaker.state());
        }
        if let Ok(depths) = self.transport.queue_depths(&self.consumers).await {
            for (service, depth) in depths {
                metrics::queue_depth(&service, depth);
            }
        }
    }
}
