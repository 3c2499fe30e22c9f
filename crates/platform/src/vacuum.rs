//! Vacuuming a service's PostgreSQL database when the server does not.
//!
//! The outbox is updated once per event (marked published) and kept as the
//! event log, orders and stock rows change at every saga step: without
//! vacuum, the outbox's index of unpublished rows fills with entries of
//! published ones that every relay claim walks over, and lookups walk
//! over dead row versions, so each order costs more than the one before.
//! Servers normally vacuum by themselves (`autovacuum = on`); on one that
//! does not, such as this project's CI machine, each service vacuums its
//! own database now and then. Measured there after 20,000 orders (82,000
//! outbox rows): a relay claim read 98 index pages and took 0.62 ms, 1 page
//! and 0.03 ms once vacuumed; without vacuum that cost grows with every
//! event ever published.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use crate::db::Db;
use crate::periodic::Periodic;

/// A [`Periodic`] that vacuums `db` when its server's autovacuum is off.
pub struct Vacuum {
    db: Db,
    /// Learned at the first pass: whether the server leaves it to us.
    needed: OnceCell<bool>,
    passes: AtomicU32,
}

/// One pass in this many also analyzes: refreshing the statistics of a
/// whole database takes about ten times as long as a vacuum (0.30 s against
/// 0.04 s for the order service's after 5,000 orders), which at every pass
/// showed in the latency of the orders in flight.
const ANALYZE_EVERY: u32 = 30;

impl Vacuum {
    pub fn new(db: Db) -> Self {
        Vacuum {
            db,
            needed: OnceCell::new(),
            passes: AtomicU32::new(0),
        }
    }
}

#[async_trait]
impl Periodic for Vacuum {
    fn name(&self) -> &'static str {
        "vacuum"
    }

    /// Often enough that a few thousand orders leave little behind, rarely
    /// enough that vacuuming costs little next to them.
    fn every(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn run_once(&self) -> anyhow::Result<usize> {
        let needed = self
            .needed
            .get_or_try_init(|| async {
                let needed = !self.db.vacuums_itself().await?;
                if needed {
                    tracing::info!(
                        every_secs = self.every().as_secs(),
                        "the server's autovacuum is off: vacuuming this database now and then"
                    );
                }
                Ok::<_, crate::db::DbError>(needed)
            })
            .await?;
        if *needed {
            let pass = self.passes.fetch_add(1, Ordering::Relaxed);
            self.db.vacuum(pass.is_multiple_of(ANALYZE_EVERY)).await?;
        }
        Ok(0)
    }
}
