//! `/metrics` on the admin listener: the Prometheus text exposition, passed
//! on chunk by chunk as the render thread writes it (chunked transfer
//! encoding), so a scrape never holds the whole text.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Body, Frame};

use super::routes;

/// The text as it is written: chunks, then the end of the channel; an
/// `Err` last if it was cut short.
pub type Chunks = tokio::sync::mpsc::Receiver<io::Result<Bytes>>;

/// Writes the exposition for one scrape.
pub type RenderMetrics =
    std::sync::Arc<dyn Fn() -> crate::probe::BoxFuture<'static, Chunks> + Send + Sync>;

/// What the admin listener answers with: most answers whole, `/metrics` streamed.
pub type AdminBody = Either<Full<Bytes>, Streamed>;

/// 200 with the text once its first chunk is written; 500 if nothing could
/// be. An error later cuts the body short (the connection is closed without
/// the final chunk), so a scraper sees a failed scrape, never a partial one.
pub async fn respond(mut text: Chunks) -> http::Response<AdminBody> {
    let Some(Ok(first)) = text.recv().await else {
        let failed = routes::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(b"cannot render metrics\n"),
        );
        return failed.map(Either::Left);
    };
    let mut response = http::Response::new(Either::Right(Streamed {
        first: Some(first),
        rest: text,
    }));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A body read from [`Chunks`].
pub struct Streamed {
    first: Option<Bytes>,
    rest: Chunks,
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        self.rest
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}
