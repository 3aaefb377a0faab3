//! `healthgate demo`: a toy upstream whose health can be toggled, so a
//! newcomer can watch `/readyz` flip on a machine with nothing else installed.
//!
//! - `GET /healthz`: 200 `{"status":"UP"}`, or 503 `{"status":"DOWN"}` when failed
//! - `POST /fail`, `POST /recover`, `POST /toggle`: change it

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves the toy upstream on `listener` forever.
pub async fn serve_upstream(listener: TcpListener) {
    let up = Arc::new(AtomicBool::new(true));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let up = up.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            std::future::ready(Ok::<_, Infallible>(answer(
                &up,
                request.method(),
                request.uri().path(),
            )))
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service),
        );
    }
}

fn answer(up: &AtomicBool, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let (status, body) = match (method, path) {
        (&Method::GET, "/healthz") if up.load(Ordering::Relaxed) => {
            (StatusCode::OK, r#"{"status":"UP"}"#)
        }
        (&Method::GET, "/healthz") => (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"DOWN"}"#),
        (&Method::POST, "/fail") => set(up, false),
        (&Method::POST, "/recover") => set(up, true),
        (&Method::POST, "/toggle") => set(up, !up.load(Ordering::Relaxed)),
        (_, "/") => (
            StatusCode::OK,
            "demo upstream: GET /healthz; POST /fail, /recover, /toggle\n",
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn set(up: &AtomicBool, value: bool) -> (StatusCode, &'static str) {
    up.store(value, Ordering::Relaxed);
    tracing::info!(healthy = value, "demo upstream health changed");
    (
        StatusCode::OK,
        if value {
            "upstream is now healthy\n"
        } else {
            "upstream is now failing\n"
        },
    )
}
