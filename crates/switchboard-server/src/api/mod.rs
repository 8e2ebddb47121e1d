//! The server API for backends (`/api`, `X-API-Key`), with its OpenAPI document generated from
//! the handlers so the two cannot drift.

mod handlers;
pub mod types;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::{ErrorCode, ProtocolError};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Schema};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;
use types::{Channel, ErrorBody};

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
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::publish))
        .routes(routes!(handlers::broadcast))
        .routes(routes!(handlers::history))
        .routes(routes!(handlers::presence))
        .routes(routes!(handlers::channels))
        .routes(routes!(handlers::disconnect))
        .routes(routes!(handlers::info))
        .split_for_parts();
    add_common_responses(&mut api);
    set_channel_limit(&mut api, state.node.config().limits.max_channel_length);
    // Errors under /api are JSON too: a wrong method (405, with `Allow`) and an unknown path.
    let router = router
        .method_not_allowed_fallback(method_not_allowed)
        .route("/api/{*rest}", axum::routing::any(not_found))
        .layer(axum::middleware::from_fn_with_state(state, require_api_key));
    (router, api)
}

/// The error responses every operation shares, added here so that no handler can forget one:
/// 401 (the API key middleware covers every route) and, for operations with a JSON body, 400
/// (the body cannot be read: bad JSON, wrong `Content-Type`, a missing, unknown or mistyped
/// field, or a value the handler refuses) and 413 (body or `data` too large).
fn add_common_responses(api: &mut utoipa::openapi::OpenApi) {
    let error = |description: &str| {
        let content = Content::new(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
            ErrorBody::name(),
        ))));
        let mut r = utoipa::openapi::Response::new(description);
        r.content
            .insert("application/json".to_owned(), RefOr::T(content));
        RefOr::T(r)
    };
    for item in api.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            let responses = &mut op.responses.responses;
            responses.entry("401".to_owned()).or_insert_with(|| {
                error("`unauthorized`: the `X-API-Key` header is missing or wrong")
            });
            if op.request_body.is_some() {
                responses.entry("400".to_owned()).or_insert_with(|| {
                    error(
                        "`bad_request` (malformed JSON, wrong `Content-Type`, a missing, unknown \
                         or mistyped field, a value out of range), `invalid_channel` or \
                         `not_available` (the feature is off for the channel's namespace)",
                    )
                });
                responses.entry("413".to_owned()).or_insert_with(|| {
                    error("`too_large`: the body or `data` is larger than allowed")
                });
            }
        }
    }
}

/// The document's channel schema carries this node's `limits.max_channel_length`.
fn set_channel_limit(api: &mut utoipa::openapi::OpenApi, max: usize) {
    let schema = api
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut(Channel::name().as_ref()));
    if let Some(RefOr::T(Schema::Object(o))) = schema {
        o.max_length = Some(max);
    }
}

fn json_error(status: StatusCode, message: String) -> Response {
    ApiError {
        status,
        error: ProtocolError::new(ErrorCode::BadRequest, message),
    }
    .into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed here (see the Allow header)"),
    )
}

async fn not_found() -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "no such server API call (see /api/openapi.json)".to_owned(),
    )
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
