//! Answers for paths and methods Switchyard does not serve: 404, and 405 with `Allow`, each in
//! the endpoint's wire shape.

use super::auth::format_of;
use super::respond::{new_request_id, Rejection};
use crate::error::{ErrorKind, GatewayError};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};

/// 405 with a body in the endpoint's wire shape and the methods it takes in `Allow`.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let allow = match uri.path() {
        "/v1/models" | "/healthz" | "/metrics" => "GET",
        _ => "POST",
    };
    let error = GatewayError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} does not accept {method}; use {allow}", uri.path()),
    );
    let mut resp = Rejection {
        format: format_of(uri.path()),
        request_id: new_request_id(),
        error,
    }
    .into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

pub async fn not_found(uri: Uri) -> Rejection {
    Rejection::openai(GatewayError::new(
        ErrorKind::NotFound,
        format!("no route for {}", uri.path()),
    ))
}
