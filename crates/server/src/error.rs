//! `ApiError`: the one place where errors become HTTP answers — a status and the JSON body
//! `{"error": {"code", "message", "details"}}`, the code (and with it the status) from the table of [`ErrorCode`].

mod codes;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dashboard_core::CoreError;
use dashboard_engine::EngineError;
use dashboard_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

pub use self::codes::ErrorCode;

/// An error answer of the JSON API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// What went wrong, as a stable code clients can branch on; it decides the HTTP status.
    pub code: ErrorCode,
    /// One clear sentence.
    pub message: String,
    /// Structured details (the field, the path, the current status…).
    pub details: Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: Value::Null }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// With details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 400: a query parameter that cannot be understood.
    pub fn bad_query(parameter: &str, message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidQuery, format!("{parameter}: {message}"))
            .details(json!({"parameter": parameter}))
    }

    /// 404: no such resource.
    pub fn not_found(entity: &str, key: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{entity} {key} not found"))
            .details(json!({"entity": entity, "key": key}))
    }

    /// 422: a field breaks a rule.
    pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidField, format!("{field}: {message}")).details(json!({"field": field}))
    }

    /// 500: something failed inside; logged in full, answered with a generic sentence.
    pub fn internal(error: &dyn std::error::Error) -> Self {
        log::error!("internal error: {error}");
        Self::new(ErrorCode::Internal, "something went wrong inside the server; see its log")
    }
}

/// Every error answer of the API.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong.
    error: ErrorDetail<'a>,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// A stable kebab-case code clients can branch on (the OpenAPI document lists them).
    code: &'static str,
    /// One clear sentence.
    message: &'a str,
    /// Structured details (the field, the path, the current status…); absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    details: Option<&'a Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status().as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let details = (!self.details.is_null()).then_some(&self.details);
        let error = ErrorDetail { code: self.code.as_str(), message: &self.message, details };
        let mut response = HttpResponse::build(self.status());
        if self.status() == StatusCode::UNAUTHORIZED {
            // RFC 6750: a 401 says which scheme it wants (MCP clients read it to know a token is needed).
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorBody { error })
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        match &error {
            CoreError::InvalidField { field, message } => Self::invalid_field(field, message),
            CoreError::InputRejected { path, .. } => Self::new(ErrorCode::InvalidInput, error.to_string())
                .details(json!({"field": format!("input{}", path.replace('/', ".")), "path": path})),
            CoreError::IllegalTransition { from, to } => {
                Self::new(ErrorCode::IllegalTransition, error.to_string())
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
            EngineError::DuplicateName { name } => {
                Self::new(ErrorCode::DuplicateName, message).details(json!({"field": "name", "name": name}))
            }
            EngineError::VersionMismatch { expected, actual } => {
                Self::new(ErrorCode::VersionMismatch, message)
                    .details(json!({"expected_version": expected, "version": actual}))
            }
            EngineError::AlreadyFinished { status, .. } => {
                Self::new(ErrorCode::ExecutionFinished, message).details(json!({"status": status}))
            }
            EngineError::NotFinished { status, .. } => {
                Self::new(ErrorCode::ExecutionNotFinished, message).details(json!({"status": status}))
            }
            EngineError::NoSession { .. } => Self::new(ErrorCode::NoSession, message),
            EngineError::CannotContinue { backend } => {
                Self::new(ErrorCode::CannotContinue, message).details(json!({"backend": backend}))
            }
            EngineError::IdempotencyKeyReused { existing, .. } => {
                Self::new(ErrorCode::IdempotencyKeyReused, message).details(json!({"execution_id": existing}))
            }
            EngineError::Forbidden { backend, .. } => {
                Self::new(ErrorCode::Forbidden, message).details(json!({"backend": backend}))
            }
            EngineError::ShuttingDown => Self::new(ErrorCode::ShuttingDown, message),
            EngineError::BudgetExhausted { budget, spent, limit } => {
                Self::new(ErrorCode::BudgetExhausted, message)
                    .details(json!({"budget": budget, "spent": spent, "limit": limit}))
            }
            EngineError::ApprovalDecided { status, .. } => {
                Self::new(ErrorCode::ApprovalDecided, message).details(json!({"status": status}))
            }
            EngineError::StatusChanged { actual } => {
                Self::new(ErrorCode::StatusChanged, "the execution changed status meanwhile; try again")
                    .details(json!({"status": actual}))
            }
            EngineError::StoreUnavailable(error) => {
                log::error!("{error}");
                Self::new(ErrorCode::StoreUnavailable, "the store cannot be reached; try again")
            }
            EngineError::Store(error) => Self::internal(&error),
        }
    }
}
