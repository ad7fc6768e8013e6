//! The platform's container service, chosen once here.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::{Config, Platform};
