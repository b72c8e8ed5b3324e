//! The scheduler's dashboard: what ran (`record`), aggregated into frames for the page
//! (`view`), served over HTTP with its embedded assets (`http`, `assets`), and the
//! standalone performance report (`report`).

pub mod assets;
pub mod board;
pub mod http;
pub mod record;
pub mod report;
pub mod view;
