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

/// What `/metrics` serves: the exposition of one scrape, as it is written.
pub trait MetricsSource: Send + Sync + 'static {
    /// Starts rendering one scrape.
    fn scrape(&self) -> crate::probe::BoxFuture<'_, Chunks>;
}

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

impl Streamed {
    /// `first`, then what arrives on `rest` until it closes.
    pub fn new(first: Bytes, rest: Chunks) -> Self {
        Self {
            first: Some(first),
            rest,
        }
    }
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    fn chunks(items: Vec<io::Result<&'static str>>) -> Chunks {
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for item in items {
            tx.try_send(item.map(|s| Bytes::from_static(s.as_bytes())))
                .expect("room");
        }
        rx
    }

    #[tokio::test]
    async fn the_chunks_make_one_body() {
        let response = respond(chunks(vec![Ok("a 1\n"), Ok("b 2\n"), Ok("")])).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = response.into_body().collect().await.expect("whole");
        assert_eq!(body.to_bytes(), "a 1\nb 2\n");
    }

    /// Cut short after the headers went out: the body ends in an error,
    /// which hyper turns into a connection closed without the last chunk.
    #[tokio::test]
    async fn a_text_cut_short_fails_the_body() {
        let cut = Err(io::Error::other("the exposition was cut short"));
        let response = respond(chunks(vec![Ok("a 1\n"), cut])).await;
        assert_eq!(response.status(), StatusCode::OK);
        let error = response.into_body().collect().await.expect_err("cut short");
        assert!(error.to_string().contains("cut short"), "{error}");
    }

    /// Nothing written (the render thread is gone, or failed at once): a 500.
    #[tokio::test]
    async fn nothing_written_is_a_500() {
        for text in [
            chunks(vec![]),
            chunks(vec![Err(io::Error::other("failed"))]),
        ] {
            let response = respond(text).await;
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            let body = response.into_body().collect().await.expect("whole");
            assert_eq!(body.to_bytes(), "cannot render metrics\n");
        }
    }
}
