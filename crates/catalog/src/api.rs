//! Catalog REST API: `/api/v1/products`.

use agora_platform::auth::Admin;
use agora_platform::http::{parse_id, parse_ids, ApiError, Json, PageParams, Query};
use agora_platform::validate;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{NewProduct, NewProductRequest, Product};
use crate::{store, Catalog, CreateError, PricingError};

pub fn router(catalog: Catalog) -> Router {
    Router::new()
        .route("/api/v1/products", get(list).post(create))
        .route("/api/v1/products/{id}", get(show))
        .with_state(catalog)
}

/// The catalog's routes, as OpenAPI.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show, create),
    components(schemas(ProductPage, Product, NewProductRequest))
)]
pub struct ApiDoc;

/// A page of products, in creation order.
#[derive(Serialize, utoipa::ToSchema)]
struct ProductPage {
    items: Vec<Product>,
    limit: i64,
    offset: i64,
    /// The cursor of the next page (`after=`), when this one is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Uuid>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Comma-separated product ids: only these (how other services price).
    #[param(
        pattern = r"^(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})(,([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})){0,499})?$"
    )]
    ids: Option<String>,
    /// Only products whose name or SKU holds this (any case): up to 100
    /// characters; blank is none.
    #[param(
        pattern = "^[\\s\\u0085]*([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s]([^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029]{0,98}[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069\\u2028\\u2029\\s])?[\\s\\u0085]*)?$"
    )]
    q: Option<String>,
    limit: Option<i64>,
    /// Items to skip: at most 10,000 (deeper pages are read with `after`).
    #[param(maximum = 10000)]
    offset: Option<i64>,
    /// The id of the last product of the previous page: the ones after it.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

/// The catalog, in creation order, or the products named by `ids`. Public.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ListParams),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn list(
    State(catalog): State<Catalog>,
    Query(params): Query<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
        after: params.after,
    }
    .page(50)?;
    // Checked whether `ids` makes it moot or not, as every parameter is.
    let search = validate::optional_text(params.q.as_deref(), 100)
        .map_err(|message| ApiError::invalid_field("q", message))?;
    let items = match params.ids.as_deref() {
        Some(ids) => store::find_many(&catalog.db, &parse_ids(ids)?).await?,
        None => store::list(&catalog.db, search.as_deref(), &page).await?,
    };
    let next = (items.len() as i64 == page.limit && params.ids.is_none())
        .then(|| items.last().map(|p| p.id))
        .flatten();
    Ok(Json(ProductPage {
        items,
        limit: page.limit,
        offset: page.offset,
        next,
    }))
}

/// One product. Public.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 404, response = agora_platform::openapi::NotFound),
    ))]
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

/// Adds a product with its opening stock (admins).
#[utoipa::path(post, path = "/api/v1/products", tag = "catalog", request_body = NewProductRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "Created; `Location` names it", body = Product,
            headers(("location" = String, description = "The new product's URL"))),
        (status = 400, response = agora_platform::openapi::BadRequest),
        (status = 401, response = agora_platform::openapi::Unauthorized),
        (status = 403, response = agora_platform::openapi::Forbidden),
        (status = 409, response = agora_platform::openapi::Conflict),
        (status = 422, response = agora_platform::openapi::Invalid),
    ))]
async fn create(
    State(catalog): State<Catalog>,
    _: Admin,
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

/// Use-case errors as answers: the one place the catalog's refusals
/// become statuses.
impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::SkuTaken(_) => ApiError::conflict(e.to_string()),
            CreateError::Storage(e) => e.into(),
        }
    }
}

impl From<PricingError> for ApiError {
    fn from(e: PricingError) -> Self {
        match e {
            PricingError::Unavailable(e) => {
                // The details (an address, a socket error) are for the logs.
                tracing::warn!(error = %e, "cannot price: the catalog does not answer");
                ApiError::unavailable("the catalog is unavailable; try again")
            }
            PricingError::Refused(errors) => ApiError::invalid(errors),
        }
    }
}
