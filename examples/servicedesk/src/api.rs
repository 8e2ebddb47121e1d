//! The app's REST API: plain request/response over HTTP(S). Each change is written to SQLite
//! first, then pushed in-process to the channels that care.

use axum::extract::{FromRequest, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchboard_core::auth::{claims_for, mint_hs256};

use crate::app::AppState;
use crate::channels::channels_for;
use crate::error::{AppError, AppResult};
use crate::model::{NewRequest, Request, Status};
use crate::store::{ListFilter, StoreError, now_ms};
use crate::users::{self, CurrentUser, Role, USERS, User};

/// The `/api/...` and `/app/token` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/users", get(list_users))
        .route("/api/requests", get(list).post(create))
        .route("/api/requests/{id}", get(get_one))
        .route("/api/requests/{id}/status", post(set_status))
        .route("/api/requests/{id}/assign", post(assign))
        .route("/api/dashboard", get(dashboard))
        .route("/api/notifications", get(notifications))
        .route("/api/notifications/read", post(mark_read))
        .route("/app/token", get(token))
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => AppError::not_found(format!("request {id} does not exist")),
            StoreError::Conflict(m) => AppError::conflict(m),
            e @ (StoreError::Sql(_) | StoreError::Task(_)) => AppError::internal(e),
        }
    }
}

/// `axum::Json`, with malformed bodies answered as JSON 400s naming the problem.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| JsonBody(v))
            .map_err(|e| AppError::bad_request(e.body_text()))
    }
}

fn parse_id(id: &str) -> AppResult<i64> {
    id.parse()
        .map_err(|_| AppError::not_found(format!("request {id:?} does not exist")))
}

fn visible_to(user: &User, r: &Request) -> bool {
    match user.role {
        Role::Admin => true,
        Role::Customer => r.customer == user.id,
        Role::Employee => r.assignee.as_deref() == Some(user.id),
    }
}

fn display_name(id: &str) -> &str {
    users::find(id).map_or(id, |u| u.name)
}

/// Loads a request the user may see; others' requests are "not found", not "forbidden".
async fn load_visible(state: &AppState, user: &'static User, id: i64) -> AppResult<Request> {
    state
        .db
        .run(move |s| s.get(id))
        .await?
        .filter(|r| visible_to(user, r))
        .ok_or_else(|| StoreError::NotFound(id).into())
}

async fn me(CurrentUser(user): CurrentUser) -> Json<Value> {
    Json(json!({"user": user, "home": users::home(user.role)}))
}

async fn list_users() -> Json<Value> {
    Json(json!({"users": USERS}))
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Value>> {
    let requests = state
        .db
        .run(move |s| {
            s.list(match user.role {
                Role::Admin => ListFilter::All,
                Role::Customer => ListFilter::Customer(user.id),
                Role::Employee => ListFilter::Assignee(user.id),
            })
        })
        .await?;
    Ok(Json(json!({"requests": requests})))
}

async fn get_one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Request>> {
    Ok(Json(load_visible(&state, user, parse_id(&id)?).await?))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    JsonBody(body): JsonBody<NewRequest>,
) -> AppResult<impl IntoResponse> {
    if user.role != Role::Customer {
        return Err(AppError::forbidden("only customers file requests"));
    }
    let new = body.validate().map_err(AppError::bad_request)?;
    // One writer at a time: the pushes then leave in the order the changes were made.
    let _writing = state.writes.lock().await;
    let now = now_ms();
    let (request, counts, notes) = state
        .db
        .run(move |s| {
            let r = s.insert(user.id, &new, now)?;
            let text = format!("New request #{} “{}” from {}", r.id, r.title, user.name);
            let mut notes = Vec::new();
            for admin in USERS.iter().filter(|u| u.role == Role::Admin) {
                notes.push((admin.id, s.notify(admin.id, r.id, &text, now)?));
            }
            Ok((r, s.counts()?, notes))
        })
        .await?;
    state.push.request("created", &request, user.id, None).await;
    state.push.counts(&counts).await;
    for (to, (n, unread)) in &notes {
        state.push.notification(to, n, *unread).await;
    }
    Ok((StatusCode::CREATED, Json(request)))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StatusBody>,
) -> AppResult<Json<Request>> {
    let id = parse_id(&id)?;
    let to = Status::parse(&body.status).ok_or_else(|| {
        AppError::bad_request(format!(
            "status: one of {}",
            Status::ALL.map(Status::as_str).join(", ")
        ))
    })?;
    let _writing = state.writes.lock().await;
    let current = load_visible(&state, user, id).await?;
    let allowed = user.role == Role::Admin
        || (user.role == Role::Employee && current.assignee.as_deref() == Some(user.id));
    if !allowed {
        return Err(AppError::forbidden(
            "only the admin or the assigned employee moves a request",
        ));
    }
    let now = now_ms();
    let (request, counts, note) = state
        .db
        .run(move |s| {
            let r = s.set_status(id, to, now)?;
            let text = format!("Your request #{} “{}” is now {}", r.id, r.title, to.label());
            let note = s.notify(&r.customer, r.id, &text, now)?;
            Ok((r, s.counts()?, note))
        })
        .await?;
    state.push.request("status", &request, user.id, None).await;
    state.push.counts(&counts).await;
    state
        .push
        .notification(&request.customer, &note.0, note.1)
        .await;
    Ok(Json(request))
}

#[derive(Deserialize)]
struct AssignBody {
    assignee: String,
}

async fn assign(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AssignBody>,
) -> AppResult<Json<Request>> {
    let id = parse_id(&id)?;
    if user.role != Role::Admin {
        return Err(AppError::forbidden("only the admin assigns requests"));
    }
    let employee = users::find(&body.assignee)
        .filter(|u| u.role == Role::Employee)
        .ok_or_else(|| {
            let names: Vec<_> = USERS
                .iter()
                .filter(|u| u.role == Role::Employee)
                .map(|u| u.id)
                .collect();
            AppError::bad_request(format!("assignee: one of {}", names.join(", ")))
        })?;
    let _writing = state.writes.lock().await;
    let current = load_visible(&state, user, id).await?;
    if current.assignee.as_deref() == Some(employee.id) {
        return Err(AppError::conflict(format!(
            "request {id} is already assigned to {}",
            employee.name
        )));
    }
    let now = now_ms();
    let (request, previous, counts, notes) = state
        .db
        .run(move |s| {
            let (r, previous) = s.assign(id, employee.id, now)?;
            let who = display_name(&r.customer);
            let to_employee = format!("Assigned to you: #{} “{}” from {who}", r.id, r.title);
            let to_customer = format!(
                "{} is handling your request #{} “{}”",
                employee.name, r.id, r.title
            );
            let notes = vec![
                (
                    employee.id.to_owned(),
                    s.notify(employee.id, r.id, &to_employee, now)?,
                ),
                (
                    r.customer.clone(),
                    s.notify(&r.customer, r.id, &to_customer, now)?,
                ),
            ];
            Ok((r, previous, s.counts()?, notes))
        })
        .await?;
    state
        .push
        .request("assigned", &request, user.id, previous.as_deref())
        .await;
    state.push.counts(&counts).await;
    for (to, (n, unread)) in &notes {
        state.push.notification(to, n, *unread).await;
    }
    Ok(Json(request))
}

async fn dashboard(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
) -> AppResult<Json<Value>> {
    let counts = state.db.run(|s| s.counts()).await?;
    Ok(Json(json!({"counts": counts})))
}

async fn notifications(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Value>> {
    let (list, unread) = state
        .db
        .run(move |s| Ok((s.notifications(user.id, 20)?, s.unread(user.id)?)))
        .await?;
    Ok(Json(json!({"notifications": list, "unread": unread})))
}

async fn mark_read(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Value>> {
    let _writing = state.writes.lock().await;
    state.db.run(move |s| s.mark_read(user.id)).await?;
    state.push.inbox_read(user.id).await;
    Ok(Json(json!({"unread": 0})))
}

/// `GET /app/token`: a Switchboard JWT for the logged-in user, good for their own channels
/// and the dashboard only. The SDK calls this through `getToken` on connect and before expiry.
async fn token(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<impl IntoResponse> {
    let ttl = state.settings.token_ttl;
    let channels = channels_for(user);
    let claims = claims_for(user.id, ttl, channels.clone(), Vec::new());
    let token = mint_hs256(&state.settings.jwt_secret, &claims).map_err(AppError::internal)?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "token": token,
            "user": user.id,
            "channels": channels,
            "expires_in": ttl.as_secs(),
        })),
    ))
}
