//! Batching: the stock of every product of a page is one API call
//! (`GET /api/v1/inventory?ids=…`, one storage read), whatever the page's
//! size; a loader lives for one GraphQL request, with its caller's token.
//!
//! A loader batches what its fields ask for within a short wait (1 ms by
//! a timer thread, 2 ms and more in practice), which a page of products
//! would pay on every request. A page knows its ids as soon as it is read,
//! so it loads their stock at once and gives it to the loader
//! ([`prefetch`]); the products' `stock` fields then find it there. A lone
//! `product(id)` goes through the loader as usual.

use std::collections::HashMap;

use agora_platform::client::{urlencode, Caller};
use agora_platform::http::MAX_IDS;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::Context;

use crate::refusal;
use crate::types::Stock;

pub struct StockLoader {
    caller: Caller,
}

pub type Stocks = DataLoader<StockLoader, HashMapCache>;

impl StockLoader {
    pub fn for_request(caller: Caller) -> Stocks {
        DataLoader::with_cache(
            StockLoader { caller },
            tokio::spawn,
            HashMapCache::default(),
        )
        // The most ids the inventory answers in one call.
        .max_batch_size(MAX_IDS)
    }
}

/// Loads the stock of `ids` in one call and gives it to the request's
/// loader, when the query asks for it.
pub async fn prefetch(ctx: &Context<'_>, ids: Vec<String>) -> async_graphql::Result<()> {
    if ids.is_empty() || !ctx.look_ahead().field("items").field("stock").exists() {
        return Ok(());
    }
    let stocks = ctx.data_unchecked::<Stocks>();
    let loaded = stocks.loader().load(&ids).await?;
    stocks.feed_many(loaded).await;
    Ok(())
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
