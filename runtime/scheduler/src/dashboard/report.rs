//! The standalone performance report (`shoal.performance_report`): one HTML file with its
//! scripts, styles and data inlined (it opens offline, attached to a ticket), drawing the
//! task stream, per-function time and bytes, transfers and the worker timeline from a
//! `TaskStream`. Not here: choosing what went in (the actor, from its recorder).

use serde_json::json;
use shoal_proto::v1;

use super::assets;

/// The report's data as the page's script reads it.
pub fn data(stream: &v1::TaskStream, title: &str) -> serde_json::Value {
    json!({
        "title": title,
        "dropped": stream.dropped,
        "tasks": stream.tasks.iter().map(|t| json!([
            t.key, t.prefix, t.worker,
            t.start_unix_us as f64 / 1e3, t.stop_unix_us as f64 / 1e3, t.nbytes, t.ok,
        ])).collect::<Vec<_>>(),
        "transfers": stream.transfers.iter().map(|t| json!([
            t.from_worker, t.to_worker,
            t.start_unix_us as f64 / 1e3, t.stop_unix_us as f64 / 1e3, t.bytes, t.objects,
        ])).collect::<Vec<_>>(),
    })
}

/// Text safe inside a `<script>` element (no `</script>` or `<!--` can end it early).
fn script_safe(text: &str) -> String {
    text.replace("</", "<\\/").replace("<!--", "<\\!--")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(stream: &v1::TaskStream, title: &str) -> String {
    let title = if title.is_empty() {
        "Shoal performance report"
    } else {
        title
    };
    assets::REPORT
        .replace("{{title}}", &html_escape(title))
        .replace("{{uplot_css}}", assets::UPLOT_CSS)
        .replace("{{app_css}}", assets::APP_CSS)
        .replace("{{uplot_js}}", &script_safe(assets::UPLOT_JS))
        .replace("{{charts_js}}", &script_safe(assets::CHARTS_JS))
        .replace("{{report_js}}", &script_safe(assets::REPORT_JS))
        .replace("{{data}}", &script_safe(&data(stream, title).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key that looks like markup cannot end the report's script early.
    #[test]
    fn keys_cannot_break_out_of_the_script() {
        let stream = v1::TaskStream {
            tasks: vec![v1::TaskRecord {
                key: "</script><script>alert(1)</script>".into(),
                prefix: "x".into(),
                worker: "w".into(),
                start_unix_us: 1,
                stop_unix_us: 2,
                nbytes: 3,
                ok: true,
            }],
            ..Default::default()
        };
        let html = render(&stream, "<b>t</b>");
        assert!(!html.contains("</script><script>alert"));
        assert!(html.contains("&lt;b&gt;t&lt;/b&gt;"));
    }
}
