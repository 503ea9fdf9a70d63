//! `ApiError`: the one place where errors become HTTP answers — a status and the JSON body
//! `{"error": {"code", "message", "details"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dashboard_core::CoreError;
use dashboard_engine::EngineError;
use dashboard_store::StoreError;
use serde_json::{Value, json};

/// An error answer of the JSON API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable kebab-case code clients can branch on.
    pub code: &'static str,
    /// One clear sentence.
    pub message: String,
    /// Structured details (the field, the path, the current status…).
    pub details: Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Value::Null }
    }

    /// With details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 400: a query parameter that cannot be understood.
    pub fn bad_query(parameter: &str, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-query", format!("{parameter}: {message}"))
            .details(json!({"parameter": parameter}))
    }

    /// 404: no such resource.
    pub fn not_found(entity: &str, key: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("{entity} {key} not found"))
            .details(json!({"entity": entity, "key": key}))
    }

    /// 422: a field breaks a rule.
    pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", format!("{field}: {message}"))
            .details(json!({"field": field}))
    }

    /// 500: something failed inside; logged in full, answered with a generic sentence.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        log::error!("internal error: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong inside the server; see its log",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({"code": self.code, "message": self.message});
        if !self.details.is_null() {
            body["details"] = self.details.clone();
        }
        HttpResponse::build(self.status).json(json!({"error": body}))
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match &error {
            CoreError::InvalidField { field, message } => Self::invalid_field(field, message),
            CoreError::InputRejected { path, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", error.to_string())
                    .details(json!({"field": format!("input{}", path.replace('/', ".")), "path": path}))
            }
            CoreError::IllegalTransition { from, to } => {
                Self::new(StatusCode::CONFLICT, "illegal-transition", error.to_string())
                    .details(json!({"from": from, "to": to}))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        EngineError::from(error).into()
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let message = error.to_string();
        match error {
            EngineError::NotFound { entity, key } => Self::not_found(entity, &key),
            EngineError::Invalid(error) => error.into(),
            EngineError::DuplicateName { name } => Self::new(StatusCode::CONFLICT, "duplicate-name", message)
                .details(json!({"field": "name", "name": name})),
            EngineError::VersionMismatch { expected, actual } => {
                Self::new(StatusCode::CONFLICT, "version-mismatch", message)
                    .details(json!({"expected_version": expected, "version": actual}))
            }
            EngineError::AlreadyFinished { status, .. } => {
                Self::new(StatusCode::CONFLICT, "execution-finished", message)
                    .details(json!({"status": status}))
            }
            EngineError::NotFinished { status, .. } => {
                Self::new(StatusCode::CONFLICT, "execution-not-finished", message)
                    .details(json!({"status": status}))
            }
            EngineError::IdempotencyKeyReused { existing, .. } => {
                Self::new(StatusCode::CONFLICT, "idempotency-key-reused", message)
                    .details(json!({"execution_id": existing}))
            }
            EngineError::Forbidden { backend, .. } => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message).details(json!({"backend": backend}))
            }
            EngineError::ShuttingDown => Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", message),
            EngineError::Store(StoreError::StatusMismatch { actual, .. }) => Self::new(
                StatusCode::CONFLICT,
                "status-changed",
                "the execution changed status meanwhile; try again",
            )
            .details(json!({"status": actual})),
            EngineError::Store(error @ StoreError::Unavailable { .. }) => {
                log::error!("{error}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "the store cannot be reached; try again",
                )
            }
            EngineError::Store(error) => Self::internal(&error),
        }
    }
}
