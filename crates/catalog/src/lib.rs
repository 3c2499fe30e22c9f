//! Catalog service: products, prices and descriptions.
//!
//! Owns the `products` table. Other services ask it for prices through
//! [`CatalogClient`]; it announces new products (and their opening stock)
//! with `ProductCreated`.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod store;

use agora_platform::events::LineItem;
use agora_platform::validate::FieldError;
use agora_platform::DbError;
use std::sync::Arc;

use agora_platform::db::Migration;
use agora_platform::service::{Context, Parts, Peer, Service, Settings};
use agora_platform::Db;
use async_trait::async_trait;
use axum::http::Extensions;
use uuid::Uuid;

pub use domain::Product;
pub use store::MIGRATIONS;

pub const NAME: &str = "catalog";

/// The catalog service: its storage and nothing else.
#[derive(Clone)]
pub struct Catalog {
    pub db: Db,
}

impl Catalog {
    pub fn new(db: Db) -> Self {
        Catalog { db }
    }

    /// Creates a product; refused when its SKU is taken.
    pub async fn create(&self, id: Uuid, new: &domain::NewProduct) -> Result<Product, CreateError> {
        let mut tx = self.db.begin().await?;
        let product = store::insert(&mut tx, id, new)
            .await?
            .ok_or_else(|| CreateError::SkuTaken(new.sku.clone()))?;
        tx.commit().await?;
        tracing::info!(product_id = %product.id, sku = %product.sku, "product created");
        Ok(product)
    }

    /// Seeds the demo catalog when the catalog is empty.
    pub async fn seed_demo(&self) -> Result<usize, CreateError> {
        if store::count(&self.db).await? > 0 {
            return Ok(0);
        }
        let demo = domain::demo_products();
        for (id, product) in &demo {
            self.create(*id, product).await?;
        }
        Ok(demo.len())
    }
}

/// Why lines could not be priced.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The catalog did not answer: worth trying again.
    #[error("{0}")]
    Unavailable(CatalogError),
    /// The catalog answered, and the lines cannot make an order.
    #[error("the lines cannot be priced ({} problems)", .0.len())]
    Refused(Vec<FieldError>),
}

/// Why a product was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a product with SKU {0} exists already")]
    SkuTaken(String),
    #[error(transparent)]
    Storage(#[from] DbError),
}

/// Prices `items` with what `catalog` says now ([`domain::price`]).
pub async fn price(
    catalog: &dyn CatalogClient,
    items: &[LineItem],
) -> Result<domain::Priced, PricingError> {
    let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let products = catalog
        .products(&ids)
        .await
        .map_err(PricingError::Unavailable)?;
    domain::price(items, &products).map_err(PricingError::Refused)
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog could not be asked (storage down, network, timeout).
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
}

/// How other services read products and prices: in-process in the embedded
/// mode, over HTTP in the distributed mode.
#[async_trait]
pub trait CatalogClient: Send + Sync {
    /// The products among `ids` that exist; missing ids are simply absent.
    async fn products(&self, ids: &[Uuid]) -> Result<Vec<Product>, CatalogError>;

    /// The breaker around the calls, if they leave the process (for `/ready`).
    fn breaker(&self) -> Option<std::sync::Arc<agora_platform::breaker::Breaker>> {
        None
    }
}

#[async_trait]
impl CatalogClient for Catalog {
    async fn products(&self, ids: &[Uuid]) -> Result<Vec<Product>, CatalogError> {
        store::find_many(&self.db, ids)
            .await
            .map_err(|e| CatalogError::Unavailable(e.to_string()))
    }
}

/// The catalog over HTTP, for services in other processes. Asks for all ids
/// in one request (`GET /api/v1/products?ids=…`), behind a circuit breaker
/// so that a catalog in trouble makes orders fail fast (503) instead of
/// piling up.
///
/// A product never changes once created (the catalog has no update), so a
/// product seen once is kept and only ids not seen yet cost a request: one
/// HTTP round trip and one query less per order. An id the catalog does not
/// know is asked again next time, since it may be created meanwhile.
pub struct HttpCatalog {
    client: reqwest::Client,
    base_url: String,
    breaker: std::sync::Arc<agora_platform::breaker::Breaker>,
    known: agora_platform::memo::Memo<Uuid, Product>,
}

/// How many products [`HttpCatalog`] keeps before it starts over.
const KNOWN_PRODUCTS: usize = 100_000;

impl HttpCatalog {
    pub fn new(base_url: &str) -> Self {
        HttpCatalog {
            client: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            breaker: std::sync::Arc::new(agora_platform::breaker::Breaker::new(
                "catalog-prices",
                5,
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(2),
            )),
            known: agora_platform::memo::Memo::new(KNOWN_PRODUCTS),
        }
    }

    /// The products among `ids` seen before, and the ids still to ask for.
    fn recall(&self, ids: &[Uuid]) -> (Vec<Product>, Vec<Uuid>) {
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.known.get(id) {
                Some(product) => found.push(product),
                None => missing.push(*id),
            }
        }
        (found, missing)
    }

    fn remember(&self, products: &[Product]) {
        self.known
            .remember(products.iter().map(|p| (p.id, p.clone())));
    }
}

#[derive(serde::Deserialize)]
struct ProductPage {
    items: Vec<Product>,
}

#[async_trait]
impl CatalogClient for HttpCatalog {
    fn breaker(&self) -> Option<std::sync::Arc<agora_platform::breaker::Breaker>> {
        Some(self.breaker.clone())
    }

    async fn products(&self, ids: &[Uuid]) -> Result<Vec<Product>, CatalogError> {
        let (mut found, missing) = self.recall(ids);
        if missing.is_empty() {
            return Ok(found);
        }
        let ids: Vec<String> = missing.iter().map(Uuid::to_string).collect();
        let url = format!(
            "{}/api/v1/products?limit=500&ids={}",
            self.base_url,
            ids.join(",")
        );
        let fetch = || async {
            self.client
                .get(url)
                .headers(agora_platform::telemetry::outgoing_headers())
                .send()
                .await?
                .error_for_status()?
                .json::<ProductPage>()
                .await
        };
        let page = self
            .breaker
            .call(fetch)
            .await
            .map_err(|e| CatalogError::Unavailable(e.to_string()))?;
        self.remember(&page.items);
        found.extend(page.items);
        Ok(found)
    }
}

/// The catalog service: products and their prices, for shoppers and for the
/// services that price orders and carts.
pub struct CatalogService;

#[async_trait]
impl Service for CatalogService {
    fn name(&self) -> &'static str {
        NAME
    }

    fn paths(&self) -> &'static [&'static str] {
        &["/api/v1/products"]
    }

    fn openapi(&self) -> utoipa::openapi::OpenApi {
        <api::ApiDoc as utoipa::OpenApi>::openapi()
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    fn offer(&self, at: Peer<'_>, _settings: &Settings, offers: &mut Extensions) {
        let client: Arc<dyn CatalogClient> = match at {
            Peer::Local(db) => Arc::new(Catalog::new(db.clone())),
            Peer::Remote(url) => Arc::new(HttpCatalog::new(url)),
        };
        offers.insert(client);
    }

    async fn build(&self, context: &Context) -> anyhow::Result<Parts> {
        let catalog = Catalog::new(context.db.clone());
        if context.settings.seed_demo {
            let seeded = catalog
                .seed_demo()
                .await
                .map_err(|e| anyhow::anyhow!("cannot seed the demo catalog: {e}"))?;
            if seeded > 0 {
                tracing::info!(products = seeded, "seeded the demo catalog");
            }
        }
        Ok(Parts::new(api::router(catalog)))
    }
}
