//! Batching: the stock of every product of a page is one API call
//! (`GET /api/v1/inventory?ids=…`, one storage read), whatever the page's
//! size; a loader lives for one GraphQL request, with its caller's token.

use std::collections::HashMap;

use agora_platform::client::{urlencode, Caller};
use async_graphql::dataloader::{DataLoader, Loader};

use crate::refusal;
use crate::types::Stock;

/// The most ids the inventory answers in one call (its `ids` limit).
pub const MAX_IDS: usize = 500;

pub struct StockLoader {
    caller: Caller,
}

impl StockLoader {
    pub fn for_request(caller: Caller) -> DataLoader<StockLoader> {
        DataLoader::new(StockLoader { caller }, tokio::spawn).max_batch_size(MAX_IDS)
    }
}

impl Loader<String> for StockLoader {
    type Value = Stock;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Stock>, Self::Error> {
        let list = ids.join(",");
        let path = format!("/api/v1/inventory?ids={}", urlencode(&list));
        let stock: Vec<Stock> = refusal::read(self.caller.get(&path).await)?;
        Ok(stock
            .into_iter()
            .map(|s| (s.product_id.to_string(), s))
            .collect())
    }
}
