//! Catalog REST API: `/api/v1/products`.

use agora_platform::http::{parse_id, ApiError, Json, Page, Query};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{NewProduct, NewProductRequest, Product};
use crate::{store, Catalog};

pub fn router(catalog: Catalog) -> Router {
    Router::new()
        .route("/api/v1/products", get(list).post(create))
        .route("/api/v1/products/{id}", get(show))
        .with_state(catalog)
}

#[derive(Serialize)]
struct ProductPage {
    items: Vec<Product>,
    limit: i64,
    offset: i64,
}

#[derive(Deserialize)]
struct ListParams {
    /// Comma-separated product ids: only these (how other services price).
    ids: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(catalog): State<Catalog>,
    Query(params): Query<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
    let page = Page {
        limit: params.limit,
        offset: params.offset,
    };
    let (limit, offset) = page.bounds();
    let items = match params.ids.as_deref() {
        Some(ids) => {
            let ids = ids
                .split(',')
                .filter(|s| !s.is_empty())
                .take(limit as usize)
                .map(|id| parse_id(id, "product id"))
                .collect::<Result<Vec<Uuid>, _>>()?;
            store::find_many(&catalog.db, &ids).await?
        }
        None => store::list(&catalog.db, limit, offset).await?,
    };
    Ok(Json(ProductPage {
        items,
        limit,
        offset,
    }))
}

async fn show(
    State(catalog): State<Catalog>,
    Path(id): Path<String>,
) -> Result<Json<Product>, ApiError> {
    let id = parse_id(&id, "product id")?;
    store::find(&catalog.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("product {id} does not exist")))
}

async fn create(
    State(catalog): State<Catalog>,
    Json(req): Json<NewProductRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewProduct::parse(req)?;
    let product = catalog.create(Uuid::now_v7(), &new).await?;
    let location = format!("/api/v1/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    ))
}
