//! Service desk: an example app that embeds Switchboard.
//!
//! The app does its request-driven work the usual way — HTML pages, a JSON REST API, SQLite —
//! and after each change publishes in-process to Switchboard channels, which push it to the
//! browsers that are looking: the customer's request list, the employee's inbox, the dashboard.
//! One process, one port; see `README.md`.

pub mod api;
pub mod app;
pub mod channels;
pub mod error;
pub mod model;
pub mod pages;
pub mod seed;
pub mod settings;
pub mod store;
pub mod users;

pub use app::{AppState, Running, build, start};
pub use settings::Settings;
