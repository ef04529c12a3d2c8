//! Reading MLflow-style requests: a GET carries its message in the query string (repeated keys for
//! lists) or, with no query, in a JSON body; other methods carry a JSON body. Numbers may arrive as
//! JSON numbers or strings ("3", "NaN", "Infinity"), as protobuf JSON allows.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, header};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::AppState;
use crate::error::ApiError;

/// A request message of type `T`, from the query string or the JSON body.
pub struct Msg<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Msg<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().unwrap_or("").to_string();
        let is_get = req.method() == Method::GET;
        if is_get && !query.is_empty() {
            return serde_html_form::from_str(&query)
                .map(Msg)
                .map_err(|e| ApiError::invalid(format!("Invalid request parameters: {e}")));
        }
        let has_json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        // Refuse a declared oversize body from its headers, before reading any of it.
        if declared_length(req.headers())
            .is_some_and(|len| len > state.limits.max_json_bytes as u64)
        {
            return Err(ApiError::too_large(
                "The request body is larger than this server accepts",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("The request body is larger than this server accepts")
            } else {
                ApiError::invalid(format!("Could not read the request body: {rejection}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return serde_json::from_str("{}").map(Msg).map_err(|e| {
                ApiError::invalid(format!("Missing value for required parameter: {e}"))
            });
        }
        if !is_get && !has_json_type {
            return Err(ApiError::invalid(
                "Bad Request. Content-Type must be one of ['application/json']",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(Msg)
            .map_err(|e| ApiError::invalid(format!("Invalid request body: {e}")))
    }
}

/// The body length a request declares in `Content-Length`, if any.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

struct Lenient<T>(std::marker::PhantomData<T>);

pub trait FromLenient: Sized {
    const EXPECTING: &'static str;
    fn from_f64(v: f64) -> Option<Self>;
    fn from_i64(v: i64) -> Option<Self>;
    fn from_str(v: &str) -> Option<Self>;
}

impl FromLenient for i64 {
    const EXPECTING: &'static str = "an integer";
    fn from_f64(v: f64) -> Option<Self> {
        (v.fract() == 0.0 && v.abs() < 9.2e18).then_some(v as i64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
    fn from_str(v: &str) -> Option<Self> {
        v.trim().parse().ok()
    }
}

impl FromLenient for f64 {
    const EXPECTING: &'static str = "a number";
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_str(v: &str) -> Option<Self> {
        match v.trim() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        }
    }
}

impl<'de, T: FromLenient> Visitor<'de> for Lenient<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_i64(v).ok_or_else(|| E::custom(format!("{v} is not {}", T::EXPECTING)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        i64::try_from(v)
            .ok()
            .and_then(T::from_i64)
            .ok_or_else(|| E::custom(format!("{v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::from_f64(v).ok_or_else(|| E::custom(format!("{v} is not {}", T::EXPECTING)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_str(v).ok_or_else(|| E::custom(format!("'{v}' is not {}", T::EXPECTING)))
    }
}

pub fn num<'de, D: Deserializer<'de>, T: FromLenient>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Lenient::<T>(std::marker::PhantomData))
}

pub fn opt_num<'de, D: Deserializer<'de>, T: FromLenient>(d: D) -> Result<Option<T>, D::Error> {
    struct Opt<T>(std::marker::PhantomData<T>);
    impl<'de, T: FromLenient> Visitor<'de> for Opt<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            num(d).map(Some)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Lenient::<T>(std::marker::PhantomData)
                .visit_i64(v)
                .map(Some)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Lenient::<T>(std::marker::PhantomData)
                .visit_u64(v)
                .map(Some)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Lenient::<T>(std::marker::PhantomData)
                .visit_f64(v)
                .map(Some)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(None);
            }
            Lenient::<T>(std::marker::PhantomData)
                .visit_str(v)
                .map(Some)
        }
    }
    d.deserialize_option(Opt::<T>(std::marker::PhantomData))
}

/// A field the message requires; its absence gives MLflow's "Missing value" error.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        ApiError::invalid(format!(
            "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
        ))
    })
}

/// A required string field, where an empty string counts as missing.
pub fn required_str<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    required(value.as_deref().filter(|s| !s.is_empty()), name)
}
