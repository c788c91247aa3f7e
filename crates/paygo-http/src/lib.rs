//! paygo's request path over HTTP: an OpenAI-compatible metering proxy.

mod error;
pub mod sizing;

pub use error::HttpError;
