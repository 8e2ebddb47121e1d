//! The server API for backends (`/api`, `X-API-Key`), with its OpenAPI document generated from
//! the handlers so the two cannot drift.

mod handlers;
pub mod types;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard server API", description = "Publish and inspect channels from backends. Every call needs the X-API-Key header."),
    modifiers(&SecurityAddon),
    security(("api_key" = []))
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The `/api` routes and the OpenAPI document describing them.
pub fn router(state: AppState) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::publish))
        .routes(routes!(handlers::broadcast))
        .routes(routes!(handlers::history))
        .routes(routes!(handlers::presence))
        .routes(routes!(handlers::channels))
        .routes(routes!(handlers::disconnect))
        .routes(routes!(handlers::info))
        .split_for_parts();
    let router = router.layer(axum::middleware::from_fn_with_state(state, require_api_key));
    (router, api)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_api_key(
    State(app): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get("x-api-key")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(given, app.settings.api_key.as_bytes()) {
        return ApiError::unauthorized("missing or wrong X-API-Key").into_response();
    }
    next.run(req).await
}
