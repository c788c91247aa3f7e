//! paygo's request path over HTTP: an OpenAI-compatible metering proxy.

mod accounts;
mod api;
mod error;
mod proxy;
mod respond;
pub mod server;
pub mod sizing;
mod stream;
mod usage;

pub use accounts::{Account, Directory, KEY_PREFIX, KeyId, NewKey};
pub use api::router;
pub use error::HttpError;
pub use proxy::{Proxy, ProxyOptions};
pub use server::{EmbeddedProxy, SellerOptions, ServerOptions, open_embedded, serve};
pub use usage::{CallRecord, Settlement, UsageBucket, UsageLog};
