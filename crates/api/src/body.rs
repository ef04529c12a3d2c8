//! Streaming request and response bodies: uploads cut off at a size limit, downloads with their
//! length.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::error::ApiError;
use crate::extract::declared_length;

/// A request body as a stream that fails once it passes `limit` bytes. The `Upload` says
/// afterwards whether that is why a write failed.
pub struct Upload {
    over: Arc<AtomicBool>,
    limit: u64,
    what: &'static str,
}

impl Upload {
    /// Refuses at once a body whose declared length is over `limit`; otherwise returns the body
    /// as a limited stream.
    pub fn start(
        headers: &HeaderMap,
        body: Body,
        limit: u64,
        what: &'static str,
    ) -> Result<(Self, BoxStream<'static, Result<Bytes, String>>), ApiError> {
        let upload = Self {
            over: Arc::new(AtomicBool::new(false)),
            limit,
            what,
        };
        if declared_length(headers).is_some_and(|len| len > limit) {
            return Err(upload.too_large());
        }
        let flag = upload.over.clone();
        let mut seen = 0u64;
        let stream = body
            .into_data_stream()
            .map(move |chunk| {
                let chunk = chunk.map_err(|e| e.to_string())?;
                seen += chunk.len() as u64;
                if seen > limit {
                    flag.store(true, Ordering::Relaxed);
                    return Err("the upload is larger than the limit".to_string());
                }
                Ok(chunk)
            })
            .boxed();
        Ok((upload, stream))
    }

    pub fn too_large(&self) -> ApiError {
        ApiError::too_large(format!(
            "{} larger than {} bytes are refused",
            self.what, self.limit
        ))
    }

    /// The error to answer for a failed write: "too large" if the limit cut it off.
    pub fn failed(&self, e: kittiwake_domain::Error) -> ApiError {
        if self.over.load(Ordering::Relaxed) {
            self.too_large()
        } else {
            ApiError(e)
        }
    }
}

/// A response streaming `size` bytes.
pub fn download(
    size: u64,
    stream: BoxStream<'static, kittiwake_domain::Result<Bytes>>,
    content_type: &str,
) -> Response {
    let body = Body::from_stream(stream.map_err(|e| std::io::Error::other(e.message)));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    response
}
