//! What every service's OpenAPI document shares: the problem+json answer
//! of a refusal, the refusals as reusable responses, and the bearer
//! security scheme. Each service describes its own routes (`api.rs`,
//! `#[utoipa::path]` on each handler, one `#[derive(OpenApi)]` listing
//! them); the binary joins the services' documents into the one it serves.
//!
//! The role a route needs is said the OpenAPI 3.1 way: the bearer scheme's
//! requirement lists it (`security(("bearer" = ["operator"]))`), since for
//! schemes other than OAuth the list holds role names.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToResponse, ToSchema};

/// A refusal, as RFC 9457 `application/problem+json`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// Always `about:blank`: the status says what happened.
    #[schema(example = "about:blank")]
    r#type: String,
    #[schema(example = "Unprocessable Entity")]
    title: String,
    #[schema(example = 422)]
    status: u16,
    #[schema(example = "the request has invalid fields")]
    detail: String,
    /// One entry per invalid field (422), or per line the state of a
    /// resource stands in the way of (409: a cart's lines, the stock).
    errors: Option<Vec<FieldProblem>>,
}

/// One invalid field of a request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldProblem {
    /// Where in the request, e.g. `shipping_address.country` or `items[1].quantity`.
    #[schema(example = "items[0].quantity")]
    field: String,
    #[schema(example = "must be at most 1000")]
    message: String,
}

macro_rules! refusals {
    ($($name:ident: $description:literal;)*) => {
        $(
            #[derive(ToResponse)]
            #[response(description = $description, content_type = "application/problem+json")]
            #[allow(dead_code)]
            pub struct $name(Problem);
        )*
    };
}

refusals! {
    BadRequest: "The request is malformed (a parameter, a JSON body that does not parse).";
    Unauthorized: "No valid access token: none, malformed, forged or expired (`WWW-Authenticate` says how).";
    Forbidden: "The caller's role may not do this.";
    NotFound: "No such resource, or none the caller may see.";
    Conflict: "The resource is not in a state that allows this (`errors` names the lines in the way, if any).";
    Invalid: "Invalid fields: `errors` names each one.";
    TooMany: "Too many requests from this client (`Retry-After` says when to try again).";
    Unavailable: "A service this needs is unavailable (`Retry-After` says when to try again).";
    PayloadTooLarge: "The body is larger than 64 KiB.";
    UnsupportedMediaType: "The body is not sent as `application/json`.";
}

/// Adds the bearer scheme (an access token from `POST /api/v1/auth/token`).
pub struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/v1/auth/token (EdDSA-signed JWT, 15 minutes). \
                         The roles a route lists are the least it needs: customer < operator < admin.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The components every service's document refers to.
#[derive(utoipa::OpenApi)]
#[openapi(
    components(
        schemas(Problem, FieldProblem),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            Invalid,
            TooMany,
            Unavailable,
            PayloadTooLarge,
            UnsupportedMediaType
        )
    ),
    modifiers(&Bearer)
)]
pub struct Shared;
