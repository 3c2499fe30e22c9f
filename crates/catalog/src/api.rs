//! Catalog REST API: `/api/v1/products`.

use agora_platform::http::{parse_id, ApiError, Json, Page, Query};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
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

async fn list(
    State(catalog): State<Catalog>,
    Query(page): Query<Page>,
) -> Result<Json<ProductPage>, ApiError> {
    let (limit, offset) = page.bounds();
    let items = store::list(&catalog.db, limit, offset).await?;
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
