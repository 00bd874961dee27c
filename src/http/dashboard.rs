//! `GET /dashboard`: the analytics page, its script and the vendored Chart.js, embedded in the
//! binary (nothing is fetched from outside the machine). The page holds no data: it reads the
//! `/v1/analytics/...` endpoints, sending the router key the user enters when keys are set, so
//! these three routes are open (see `auth::OPEN_ROUTES`).

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
/// Chart.js 4.5.1 (MIT), from npm; `scripts/vendor_chartjs.sh` fetches it again and checks it.
const CHART_JS: &str = include_str!("dashboard/vendor/chart.umd.min.js");

/// Security headers for the page: scripts and data from this server only.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:";

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        PAGE,
    )
}

pub async fn script() -> impl IntoResponse {
    javascript(SCRIPT)
}

pub async fn chart_js() -> impl IntoResponse {
    javascript(CHART_JS)
}

fn javascript(body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
