use std::fmt;

/// What went wrong, in terms a caller can act on; the HTTP layer maps each kind to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request named something malformed or out of range.
    InvalidParameter,
    /// The request named an entity that does not exist.
    NotFound,
    /// The request would create an entity whose name is taken.
    AlreadyExists,
    /// The caller is not who they claim to be.
    Unauthenticated,
    /// The caller may not perform this action.
    PermissionDenied,
    /// A body was larger than the server accepts.
    TooLarge,
    /// Something failed inside the server; the message is for the operator's log.
    Internal,
}

/// The one error type that crosses crate boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
