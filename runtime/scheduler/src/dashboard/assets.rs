//! The dashboard's files, embedded in the binary (no CDN, nothing fetched at run time).
//! uPlot is vendored from npm by `make dashboard-vendor` (pinned in
//! `runtime/scheduler/dashboard/package-lock.json`; `make dashboard-check` fails on drift).

pub const INDEX: &str = include_str!("../../dashboard/index.html");
pub const LOGIN: &str = include_str!("../../dashboard/login.html");
pub const REPORT: &str = include_str!("../../dashboard/report.html");
pub const APP_JS: &str = include_str!("../../dashboard/app.js");
pub const REPORT_JS: &str = include_str!("../../dashboard/report.js");
pub const CHARTS_JS: &str = include_str!("../../dashboard/charts.js");
pub const APP_CSS: &str = include_str!("../../dashboard/app.css");
pub const UPLOT_JS: &str = include_str!("../../dashboard/vendor/uPlot.iife.min.js");
pub const UPLOT_CSS: &str = include_str!("../../dashboard/vendor/uPlot.min.css");

/// An asset by file name, with its content type.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    Some(match name {
        "app.js" => (JS, APP_JS),
        "charts.js" => (JS, CHARTS_JS),
        "app.css" => (CSS, APP_CSS),
        "uPlot.iife.min.js" => (JS, UPLOT_JS),
        "uPlot.min.css" => (CSS, UPLOT_CSS),
        _ => return None,
    })
}
